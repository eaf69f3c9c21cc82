"""The engine: the only code that changes job state, and the dispatcher.

submitting (JobSpec, jobs_submit), actions (cancel, retry, deadlines),
control (pause, resume, wake, dispatcher slots), claiming, recording, dispatch
(the asyncio loop), capacity and pacing (quotas), backoff, pricing, tokens (API
tokens), and gemini: the one module that imports google-genai. Nothing here
imports the pages, the API or the runs room."""
