"""Tests of jobs/runs/: bulk runs from a file, their pages and their results."""
