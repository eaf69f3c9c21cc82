"""The Django project: settings, the root URLs, and the WSGI/ASGI entry points."""
