"""The size limit on an uploaded run file, kept while the request body streams in.

Django keeps an upload in memory or, above FILE_UPLOAD_MAX_MEMORY_SIZE, writes
it to a temporary file as it arrives, and hands it to the view only once the
whole body is read: a 20 MB file met a 1 MiB FLEX_RUN_MAX_BYTES only when all
of it was on disk. RunFileLimit comes first in FILE_UPLOAD_HANDLERS, so it sees
each chunk before the handlers that keep it and drops the file the moment it
passes the limit. The page (or the API) then finds no file, asks
upload_refusal why, and refuses it in the words jobs.formats uses for a file
over the limit.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest

from jobs import formats

# Multipart boundaries and part headers: the bytes of a body Django counts
# against neither DATA_UPLOAD_MAX_MEMORY_SIZE nor a file.
FRAMING_BYTES = 1024 * 1024


class RunFileLimit(FileUploadHandler):
    """Drops a file over FLEX_RUN_MAX_BYTES: before its first byte when the
    request's Content-Length already says it must be, else at the first
    chunk past the limit. It keeps nothing itself: the handlers after it do.

    A dropped file is skipped, not the upload stopped: Django reads the rest of
    it and throws it away, then parses the fields after it, so the page can
    show them again. Leaving the body unread would save that reading, but
    clients still sending it (browsers, Python's urllib and requests) then see
    a broken connection instead of the answer."""

    refusal: str | None = None
    body_too_long = False
    received = 0

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # The largest file allowed and the largest settings a run upload's form
        # takes never make a longer body.
        most = settings.FLEX_RUN_MAX_BYTES + settings.FORM_FIELDS_MAX_BYTES + FRAMING_BYTES
        self.body_too_long = content_length > most

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0
        if self.body_too_long:
            self._refuse()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.FLEX_RUN_MAX_BYTES:
            self._refuse()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the file is the next handler's to return

    def _refuse(self) -> None:
        self.refusal = formats.file_too_large(settings.FLEX_RUN_MAX_BYTES)
        raise SkipFile


def upload_refusal(request: HttpRequest) -> str | None:
    """Why a file of this request was dropped as it streamed in, or None."""
    request.FILES  # noqa: B018 (reading it parses the body, if nothing has yet)
    refusals = (
        handler.refusal
        for handler in request.upload_handlers
        if isinstance(handler, RunFileLimit) and handler.refusal
    )
    return next(refusals, None)
