"""The API's interactive docs, /api/docs, for signed-in people: Swagger UI
from the copy django-ninja bundles, so the page works offline, under the
site's Content-Security-Policy (scripts and styles from 'self' only).

Ninja renders its own docs page only when ninja is an installed app (else it
links Swagger UI on a CDN), and its `docs_decorator` would also wrap the
OpenAPI document, which token holders read without a session; so the page and
its assets are views of our own. The page has no inline script: the settings
are a JSON data block, read by ninja's swagger-ui-init.js.
"""

from __future__ import annotations

from pathlib import Path

import ninja
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, json_script
from django.views.decorators.http import require_safe
from django.views.static import serve

NINJA_STATIC = Path(ninja.__file__).parent / "static" / "ninja"
# Only what the page loads, not whatever else ships in ninja's folder.
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-init.js", "favicon.png"})
SWAGGER_SETTINGS = {"layout": "BaseLayout", "deepLinking": True}

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{css}">
<link rel="icon" href="{icon}" type="image/png">
</head>
<body>
{settings}
<div id="swagger-ui"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"""


def _asset_url(name: str) -> str:
    return reverse("api-docs-asset", args=[name])


@require_safe
@login_required
def docs_page(request: HttpRequest) -> HttpResponse:
    # The API takes tokens, not the session, so Swagger UI needs no CSRF
    # token: "Authorize" asks for the bearer token.
    settings = {**SWAGGER_SETTINGS, "url": reverse("api:openapi-json")}
    html = format_html(
        PAGE,
        title="FlexDash API docs",
        css=_asset_url("swagger-ui.css"),
        icon=_asset_url("favicon.png"),
        settings=json_script(settings, "swagger-settings"),
        bundle=_asset_url("swagger-ui-bundle.js"),
        init=_asset_url("swagger-ui-init.js"),
    )
    return HttpResponse(html)


@require_safe
def docs_asset(request: HttpRequest, name: str) -> HttpResponse:
    """One of ninja's Swagger UI files: public code, served to anyone like /static/."""
    if name not in ASSETS:
        raise Http404(name)
    return serve(request, name, document_root=NINJA_STATIC)
