"""Bulk runs: a file of prompts becomes a run of jobs.

services (create, cancel, retry, move to standard, delete), reading (a file
into checked run lines and an estimate), uploads (previews staged on disk),
queries, forms, views, urls, and downloads (shared with the API)."""
