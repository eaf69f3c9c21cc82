"""Notifications, the sending side: e-mail and signed webhooks for the notices
the engine writes (jobs/engine/notices.py), each try recorded, and a person's
choices of what to be told and how. Runs on django-q2 (jobs/tasks.py), never
in the dispatcher."""
