"""Template tags and filters for the dashboard's pages."""
