"""The WSGI entry point that gunicorn serves (`make serve`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flexdash.settings")
application = get_wsgi_application()
