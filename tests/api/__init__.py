"""Tests of jobs/api/: the JSON API for jobs, batches and capacity."""
