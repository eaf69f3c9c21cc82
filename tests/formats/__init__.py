"""Tests of jobs/formats/: the upload and result file shapes."""
