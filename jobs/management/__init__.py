"""Management commands (see commands/)."""
