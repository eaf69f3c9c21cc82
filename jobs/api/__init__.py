"""The JSON API, moving into one module per resource (this commit only moves the file)."""

from jobs.api.jobs import api

__all__ = ["api"]
