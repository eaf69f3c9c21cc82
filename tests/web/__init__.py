"""Tests of jobs/web/: the researcher's pages, the account page and /healthz."""
