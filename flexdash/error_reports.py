"""What Django's error reports may show: the DEBUG error page and the error
e-mails list every setting and the request's META, which under runserver holds
the whole process environment. SecretHidingFilter (settings'
DEFAULT_EXCEPTION_REPORTER_FILTER) masks what Django masks already (any name
with KEY, SECRET, PASS, TOKEN, API, AUTH or SIGNATURE in it, so *_PASSWORD and
the password inside DATABASES too), DATABASE_URL whole, and the password
inside any other URL (FLEX_CACHE_URL's redis://:password@host, say)."""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

# The userinfo's password, as urllib reads it: after the first ":" following
# "scheme://", up to the last "@" before the path.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s/?#@:]*:)[^\s/?#]*@", re.I)


class SecretHidingFilter(SafeExceptionReporterFilter):
    # Django's own list, plus DATABASE_URL: its user, host and database name
    # say where the password works, so none of it is shown.
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DATABASE_URL", flags=re.I
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        # Django's cleanse_setting calls this again for each item of a dict,
        # list or tuple, so URLs nested in DATABASES or CACHES are reached too.
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            # str(): a lazy string (django-axes keeps one in settings) is no str to re.
            return _URL_PASSWORD.sub(rf"\g<head>{self.cleansed_substitute}@", str(cleansed))
        return cleansed
