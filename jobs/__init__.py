"""The one Django app: prompts run on Gemini's flex tier.

Its rooms, whose imports only point down (pyproject.toml, [tool.importlinter]):
admin/, api/, management/ and templatetags/ on top; runs/ (bulk runs from a
file); web/ (the researcher's pages); engine/ (the only code that changes job
state, the dispatcher, and the one door to Gemini); models.py; formats/ and
simulator/ at the bottom."""
