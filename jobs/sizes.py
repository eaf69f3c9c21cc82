"""What a request's input costs in tokens before it is sent: `estimate_input_tokens`
and `media_tokens`, the estimate pacing and the pages use, and
`media_worst_case_tokens`, the most its images and documents can cost on any model
FlexDash sends to, which the budgets reserve. The sizes come from the bytes
themselves: an image's header (PNG, JPEG, WebP), a PDF's pages. Pure functions, no
Django, never raising on what a researcher sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from typing import Any

from jobs.catalog import INPUT_LIMIT_TOKENS
from jobs.gemini_shape import PDF_MIME, generation, media, parts, system_text

# Gemini's published input token counts: an image is 258 tokens (up to 384 px a side,
# then 258 per 768 px tile), a document 258 per page. The estimate counts the smallest;
# the worst case the budgets reserve is media_worst_case_tokens.
IMAGE_TOKENS = 258
PAGE_TOKENS = 258


def _blob_bytes(blob: dict) -> bytes | None:
    """The decoded inline data; None for media sent by URI (or data that is not base64)."""
    if "data" not in blob:
        return None
    try:
        return base64.b64decode(blob["data"])
    except (binascii.Error, ValueError):
        return None


def media_tokens(request: dict) -> int:
    """Input tokens of the images and documents: IMAGE_TOKENS each image, PAGE_TOKENS
    each document page (Gemini's published counts); a document whose pages cannot be
    counted is one page. An estimate, for pacing: budgets reserve media_worst_case_tokens."""
    tokens = 0
    for blob in media(request):
        if blob.get("mime_type") == PDF_MIME:
            raw = _blob_bytes(blob)
            pages = pdf_pages(raw) if raw is not None else None
            tokens += PAGE_TOKENS * (pages or 1)
        else:
            tokens += IMAGE_TOKENS
    return tokens


# --- Media: sizes, pages and the worst case ---------------------------------------------
# Gemini 2.x: an image with both sides up to SMALL_IMAGE_SIDE px is IMAGE_TOKENS; a larger
# one is cut into square crops of min(width, height) / 1.5 px, held to 256..768, at
# IMAGE_TOKENS each (tiled_image_tokens). Gemini scales an image down to fit
# MAX_IMAGE_SIDE x MAX_IMAGE_SIDE before it counts it.
SMALL_IMAGE_SIDE = 384
CROP_SIDES = (256, 768)
MAX_IMAGE_SIDE = 3072
# Gemini 3 counts an image, and a document page, by its media resolution (the part's own,
# else generation_config's): at most these tokens. Unset, an image is counted at high and
# a page at medium; ultra high is for single parts.
RESOLUTION_TOKENS = {"LOW": 280, "MEDIUM": 560, "HIGH": 1120, "ULTRA_HIGH": 2240}
DEFAULT_IMAGE_RESOLUTION = "HIGH"
DEFAULT_PAGE_RESOLUTION = "MEDIUM"
# The Gemini API takes a document of at most this many pages (Google's published limit).
MAX_PDF_PAGES = 1000
# Object streams that inflate to more than this in all are not read (their pages are
# then unknown): a PDF cannot make its reading cost more.
_MAX_OBJECT_STREAMS_BYTES = 64 * 1024 * 1024
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?!s)")
_PDF_OBJECT_STREAM = re.compile(rb"/Type\s*/ObjStm(?![A-Za-z])")
_PDF_STREAM_START = re.compile(rb"(?<!end)stream\r?\n")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The JPEG markers that start a frame header (SOF0-SOF15 but DHT, JPG and DAC), which
# gives the image's size; and those that stand alone, with no length after them.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_ALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def pdf_pages(raw: bytes) -> int | None:
    """A PDF's pages: its `/Type /Page` objects (not `/Type /Pages`), those compressed in
    object streams (PDF 1.5 and later) included; at least one. None when an object stream
    cannot be inflated (not Flate, encrypted, truncated), so pages may be hidden."""
    pages = len(_PDF_PAGE.findall(raw))
    view = memoryview(raw)
    room = _MAX_OBJECT_STREAMS_BYTES
    for found in _PDF_OBJECT_STREAM.finditer(raw):
        start = _PDF_STREAM_START.search(raw, found.end())
        end = raw.find(b"endstream", start.end()) if start else -1
        if end < 0 or room <= 0:
            return None
        inflater = zlib.decompressobj()
        try:
            objects = inflater.decompress(view[start.end() : end], room)
        except zlib.error:
            return None
        if not inflater.eof:  # cut short, or more than we read
            return None
        room -= len(objects)
        pages += len(_PDF_PAGE.findall(objects))
    return max(1, pages)


def image_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels from the header of a PNG, JPEG or WebP image, without
    decoding it; None for any other format (HEIC and HEIF among them) and for data too
    short or malformed to say. Never raises."""
    try:
        if raw.startswith(_PNG_SIGNATURE):
            size = _png_size(raw)
        elif raw.startswith(b"\xff\xd8"):
            size = _jpeg_size(raw)
        elif raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
            size = _webp_size(raw)
        else:
            size = None
    except (AttributeError, TypeError):  # not bytes at all
        return None
    return size if size is not None and min(size) > 0 else None


def _png_size(raw: bytes) -> tuple[int, int] | None:
    # The IHDR chunk comes first: length, "IHDR", width and height (4 bytes each, big-endian).
    if len(raw) < 24 or raw[12:16] != b"IHDR":
        return None
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    # Segments after SOI: 0xFF, a marker, and (but for standalone markers) a big-endian
    # length that counts itself; a frame header holds precision, height, width.
    at = 2
    while at + 1 < len(raw):
        if raw[at] != 0xFF:
            return None
        marker = raw[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        at += 2
        if marker in _JPEG_ALONE:
            continue
        if marker in (0xD9, 0xDA) or at + 2 > len(raw):  # image or scan before any frame
            return None
        length = int.from_bytes(raw[at : at + 2], "big")
        if marker in _JPEG_FRAMES:
            if length < 7 or at + 7 > len(raw):
                return None
            return int.from_bytes(raw[at + 5 : at + 7], "big"), int.from_bytes(
                raw[at + 3 : at + 5], "big"
            )
        if length < 2:
            return None
        at += length
    return None


def _webp_size(raw: bytes) -> tuple[int, int] | None:
    # RIFF header (12 bytes), then the first chunk's name and size, then its payload at 20.
    chunk = raw[12:16]
    if chunk == b"VP8X" and len(raw) >= 30:  # extended: canvas width and height less one
        return 1 + int.from_bytes(raw[24:27], "little"), 1 + int.from_bytes(raw[27:30], "little")
    if chunk == b"VP8 " and len(raw) >= 30 and raw[23:26] == b"\x9d\x01\x2a":  # lossy key frame
        return int.from_bytes(raw[26:28], "little") & 0x3FFF, int.from_bytes(
            raw[28:30], "little"
        ) & 0x3FFF
    if chunk == b"VP8L" and len(raw) >= 25 and raw[20] == 0x2F:  # lossless: 14 bits each, less one
        bits = int.from_bytes(raw[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def tiled_image_tokens(width: int, height: int) -> int:
    """Gemini 2.x's input tokens for an image of width x height px: IMAGE_TOKENS when
    neither side passes SMALL_IMAGE_SIDE, else IMAGE_TOKENS for each square crop of
    floor(min(width, height) / 1.5) px held to CROP_SIDES that it takes to cover the
    image (never fewer than its 768 px tiles)."""
    if width <= SMALL_IMAGE_SIDE and height <= SMALL_IMAGE_SIDE:
        return IMAGE_TOKENS
    low, high = CROP_SIDES
    crop = min(max(min(width, height) * 2 // 3, low), high)
    return IMAGE_TOKENS * -(-width // crop) * -(-height // crop)


# The most tiled_image_tokens gives an image within MAX_IMAGE_SIDE a side: for a given
# shorter side the crop is fixed and the count grows with the longer side, so it is the
# most over every shorter side with the longer one at MAX_IMAGE_SIDE (24 crops, 6,192).
MOST_TILED_IMAGE_TOKENS = max(
    tiled_image_tokens(MAX_IMAGE_SIDE, side) for side in range(1, MAX_IMAGE_SIDE + 1)
)


def _resolution_tokens(part: dict, config: dict, default: str) -> int:
    """The most Gemini 3 counts the image or page in `part` at the media resolution asked
    (the part's level, else the request's, else `default`): RESOLUTION_TOKENS of the
    level, or the part's num_tokens when more; a level it does not know counts as the
    highest."""
    level, num_tokens = _resolution(part.get("media_resolution"))
    level = level or _resolution(config.get("media_resolution"))[0] or default
    return max(RESOLUTION_TOKENS.get(level, max(RESOLUTION_TOKENS.values())), num_tokens)


def _resolution(asked: Any) -> tuple[str, int]:
    """(level, num_tokens) of a media resolution: a level's name ("MEDIA_RESOLUTION_HIGH",
    any case) or a part's {"level", "num_tokens"}; ("", 0) for none or unspecified."""
    num_tokens = 0
    if isinstance(asked, dict):
        given = asked.get("num_tokens", asked.get("numTokens"))
        if isinstance(given, int) and not isinstance(given, bool):
            num_tokens = given
        asked = asked.get("level")
    level = str(asked or "").upper().removeprefix("MEDIA_RESOLUTION_")
    return ("" if level == "UNSPECIFIED" else level), num_tokens


def _image_worst_case(raw: bytes | None, part: dict, config: dict) -> int:
    size = image_size(raw) if raw is not None else None
    if size is None:
        tiled = MOST_TILED_IMAGE_TOKENS
    else:
        tiled = tiled_image_tokens(*size)
        if max(size) > MAX_IMAGE_SIDE:  # however Gemini rounds when it scales it down
            tiled = max(tiled, MOST_TILED_IMAGE_TOKENS)
    return max(tiled, _resolution_tokens(part, config, DEFAULT_IMAGE_RESOLUTION))


def media_worst_case_tokens(request: dict) -> int:
    """The most input tokens the images and documents of `request` can cost on any model
    FlexDash sends to (Gemini 2.x and 3), for a budget's reservation. Each part:

    - an image: the greater of Gemini 2.x's tiled_image_tokens for the size its header
      gives and Gemini 3's count at its media resolution (RESOLUTION_TOKENS). An image
      whose size cannot be read (sent by URI, HEIC or HEIF, malformed) or that passes
      MAX_IMAGE_SIDE is counted as the largest image can be: MOST_TILED_IMAGE_TOKENS,
      which assumes (as Google publishes) that Gemini scales every image down to fit
      MAX_IMAGE_SIDE x MAX_IMAGE_SIDE before counting it;
    - a PDF: its pages (pdf_pages), or MAX_PDF_PAGES when sent by URI or when its pages
      cannot all be counted, each the greater of PAGE_TOKENS and Gemini 3's count at its
      media resolution;
    - text sent inline: a token per byte, as for all text;
    - anything else (audio, video, text by URI, a file of no stated type): the largest
      prompt Gemini takes (INPUT_LIMIT_TOKENS), having no size to count from.
    """
    config = generation(request)
    tokens = 0
    for _, part in parts(request):
        blob = part.get("inline_data") or part.get("file_data")
        if blob is None:
            continue
        mime = str(blob.get("mime_type") or "").lower()
        raw = _blob_bytes(blob)
        if mime == PDF_MIME:
            pages = pdf_pages(raw) if raw is not None else None
            per_page = max(PAGE_TOKENS, _resolution_tokens(part, config, DEFAULT_PAGE_RESOLUTION))
            tokens += (pages or MAX_PDF_PAGES) * per_page
        elif mime.startswith("image/"):
            tokens += _image_worst_case(raw, part, config)
        elif mime.startswith("text/") and raw is not None:
            tokens += len(raw)
        else:
            tokens += INPUT_LIMIT_TOKENS
    return tokens


def estimate_input_tokens(request: dict) -> int:
    """Input tokens before sending: text (and function calls and results, as JSON) at
    four characters a token, and media_tokens."""
    chars = len(system_text(request))
    for _, part in parts(request):
        if "text" in part:
            chars += len(part["text"])
        elif "inline_data" not in part and "file_data" not in part:
            chars += len(json.dumps(part))
    return media_tokens(request) + math.ceil(chars / 4)
