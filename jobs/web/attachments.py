"""Images and PDFs attached on the submit page, turned into the inline_data parts of
a request. The type is read from the file's first bytes, never taken from its name
or from what the browser says, and the size is checked against Gemini's limit on
inline data before anything is read whole."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from jobs import gemini_shape

# What each type is called where a person reads it (the form's errors, the job page).
MEDIA_LABELS = {
    "image/png": "PNG image",
    "image/jpeg": "JPEG image",
    "image/webp": "WebP image",
    "image/heic": "HEIC image",
    "image/heif": "HEIF image",
    "application/pdf": "PDF document",
}
# For the file chooser only; the content decides.
ACCEPT = "image/png,image/jpeg,image/webp,image/heic,image/heif,application/pdf,.heic,.heif"
# The major brands of an ISO media file ("....ftypheic") that mark HEIC and HEIF images.
HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"}
HEIF_BRANDS = {b"mif1", b"msf1", b"heif"}
SNIFF_BYTES = 16
LARGER_MEDIA = "Larger media must come as file_data URIs, e.g. via the API."


def sniffed_type(head: bytes) -> str | None:
    """The MIME type the first bytes of a file declare, among those Gemini takes inline."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        if head[8:12] in HEIC_BRANDS:
            return "image/heic"
        if head[8:12] in HEIF_BRANDS:
            return "image/heif"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def megabytes(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


def too_large(total: int) -> str:
    limit = gemini_shape.MAX_INLINE_BYTES // 1_048_576
    return (
        f"The attachments come to {megabytes(total)}; Gemini takes at most {limit} MB inline "
        f"in one request. {LARGER_MEDIA}"
    )


def inline_parts(files: Sequence[UploadedFile]) -> list[dict]:
    """One inline_data part per file, in the order chosen; raises ValidationError
    naming the file that is empty or of a type Gemini does not take, or the
    total when it passes the limit."""
    total = sum(upload.size or 0 for upload in files)
    if total > gemini_shape.MAX_INLINE_BYTES:
        raise ValidationError(too_large(total))
    parts = []
    for upload in files:
        upload.seek(0)
        raw = upload.read()
        if not raw:
            raise ValidationError(f"{upload.name} is empty.")
        mime_type = sniffed_type(raw[:SNIFF_BYTES])
        if mime_type is None:
            raise ValidationError(
                f"{upload.name} is not a PNG, JPEG, WebP, HEIC or HEIF image or a PDF: its "
                "content is none of these, whatever its name says."
            )
        data = base64.b64encode(raw).decode("ascii")
        parts.append({"inline_data": {"mime_type": mime_type, "data": data}})
    return parts
