"""Browser tests: Chromium through Playwright against a live server and a real cluster."""
