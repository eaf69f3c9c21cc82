"""The Gemini key never leaves: the one redaction applied wherever outside text
(a prompt, an answer, a system instruction, an error, a pause reason) is shown,
on the pages (the `redacted` template filter), in the admin, the API, the
downloads, /healthz, the `jobs` command, and every log line (RedactApiKeyFilter,
installed on the handlers in settings.LOGGING).

It lives outside the rooms, like jobs/text.py, so that the settings' logging
(configured before the apps load), the models and every room can use it;
jobs/engine/gemini.py applies it too, to Gemini's error messages before they
are cut to length, so no stored error keeps a piece of the key.
"""

from __future__ import annotations

import logging

REDACTED = "[GEMINI_API_KEY]"
# A text cut short (the jobs list's prompt excerpt, an error cut to length) can end
# in the start of the key: that much of it, or more, is redacted too.
SHORTEST_PIECE = 8


def redact_api_key(text: str) -> str:
    """Text that came from outside, with settings.GEMINI_API_KEY (should an answer,
    an error or a prompt ever quote it) replaced by REDACTED, and so is a start of
    the key of SHORTEST_PIECE characters or more that ends the text."""
    from django.conf import settings

    key = settings.GEMINI_API_KEY
    if not key or not text:
        return text
    text = text.replace(key, REDACTED)
    for length in range(min(len(key) - 1, len(text)), SHORTEST_PIECE - 1, -1):
        if text.endswith(key[:length]):
            return text[:-length] + REDACTED
    return text


class RedactApiKeyFilter(logging.Filter):
    """Takes the key out of a log record's message, arguments and traceback, so no
    handler it is installed on ever writes it. Changes the record; drops none."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # Arguments that do not fit the format: logging would print them raw
            # on stderr as a "Logging error"; keep the line, with them after it.
            message = f"{record.msg} {record.args!r}"
            record.msg, record.args = message, None
        if (redacted := redact_api_key(message)) != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_api_key(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_api_key(record.stack_info)
        return True
