"""Tests of jobs/management/commands/: submit, jobs and apitoken."""
