"""The ASGI entry point (unused by `make run` and `make serve`, kept for ASGI servers)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flexdash.settings")
application = get_asgi_application()
