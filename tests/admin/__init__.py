"""Tests of jobs/admin/: the operator's admin pages and actions."""
