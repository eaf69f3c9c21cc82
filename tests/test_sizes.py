"""What the images and documents of a request can cost at most: an image's size read from
its header without decoding it (never raising on bad data), Gemini 2.x's tiles for that
size, Gemini 3's count at the media resolution asked, and the worst case of every kind
of part, for the budgets' reservation. Pure functions: no database, no simulator."""

from __future__ import annotations

import math
import random

import pytest

from jobs import sizes
from jobs.catalog import INPUT_LIMIT_TOKENS
from jobs.sizes import (
    MOST_TILED_IMAGE_TOKENS,
    image_size,
    media_worst_case_tokens,
    pdf_pages,
    tiled_image_tokens,
)
from tests.images import inline, jpeg, pdf, png, webp_extended, webp_lossless, webp_lossy

FORMATS = {
    "png": png,
    "jpeg": jpeg,
    "webp lossy": webp_lossy,
    "webp lossless": webp_lossless,
    "webp extended": webp_extended,
}
# Where each format's size ends: a header cut before it says nothing.
SIZE_ENDS = {"png": 24, "jpeg": None, "webp lossy": 30, "webp lossless": 25, "webp extended": 30}
HEIC = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64


def request_of(*parts: dict, **generation_config) -> dict:
    request: dict = {"contents": [{"role": "user", "parts": [{"text": "Look"}, *parts]}]}
    if generation_config:
        request["generation_config"] = generation_config
    return request


# --- An image's size from its header ----------------------------------------------------
@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("size", [(1, 1), (2000, 1500), (385, 16383), (16383, 3)])
def test_an_images_size_is_read_from_its_header(kind, size):
    assert image_size(FORMATS[kind](*size)) == size


@pytest.mark.parametrize("kind", FORMATS)
def test_a_header_cut_short_has_no_size_and_never_raises(kind):
    whole = FORMATS[kind](2000, 1500)
    end = SIZE_ENDS[kind] or whole.index(b"\xff\xc0") + 9  # JPEG: SOF0 through its width
    for length in range(len(whole)):
        assert image_size(whole[:length]) == (None if length < end else (2000, 1500)), length


def test_what_is_no_image_it_can_read_has_no_size():
    assert image_size(HEIC) is None, "HEIC and HEIF are not read"
    assert image_size(b"") is None
    assert image_size(b"GIF89a\x10\0\x10\0") is None, "GIF is no type Gemini takes inline"
    assert image_size(b"\x89PNG\r\n\x1a\n" + b"\0" * 64) is None, "no IHDR chunk"
    assert image_size(png(0, 10)) is None and image_size(jpeg(10, 0)) is None, "a zero side"
    scan_first = b"\xff\xd8\xff\xda\0\x08" + b"\0" * 6 + jpeg(10, 10)[2:]
    assert image_size(scan_first) is None, "a scan before any frame header"
    assert image_size(b"\xff\xd8\xff\xe0\0\x01" + jpeg(10, 10)[2:]) is None, "a length under 2"
    assert image_size(b"\xff\xd8\x00" + jpeg(10, 10)[2:]) is None, "no marker where one must be"
    assert image_size("not bytes") is None  # type: ignore[arg-type]


def test_garbled_headers_never_raise():
    rng = random.Random(15)
    wholes = [make(2000, 1500) for make in FORMATS.values()]
    for _ in range(3000):
        garbled = bytearray(rng.choice(wholes))
        for _ in range(rng.randint(1, 4)):
            garbled[rng.randrange(len(garbled))] = rng.randrange(256)
        size = image_size(bytes(garbled[: rng.randint(0, len(garbled))]))
        assert size is None or min(size) > 0


# --- Gemini 2.x's tiles -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("width", "height", "tiles"),
    [
        (1, 1, 1),
        (384, 384, 1),  # both sides up to 384 px: one image
        (385, 384, 4),  # else crops of floor(384 / 1.5) = 256 px: 2 x 2
        (385, 385, 4),
        (768, 768, 4),  # crops of 512 px, not one 768 px tile
        (1152, 1152, 4),  # crops held at 768 px
        (3072, 100, 12),  # a crop is never under 256 px: 12 x 1
        (3072, 3072, 16),
        (2000, 1500, 6),  # crops of 768 px: 3 x 2
    ],
)
def test_gemini_2_counts_258_tokens_a_tile(width, height, tiles):
    assert tiled_image_tokens(width, height) == 258 * tiles
    assert tiled_image_tokens(height, width) == 258 * tiles


def test_the_tiles_are_never_fewer_than_768_px_tiles_and_never_more_than_24_within_3072():
    assert MOST_TILED_IMAGE_TOKENS == 24 * 258
    for width in range(1, 3073, 7):
        for height in range(1, 3073, 5):
            tokens = tiled_image_tokens(width, height)
            assert tokens >= 258 * math.ceil(width / 768) * math.ceil(height / 768)
            assert tokens <= MOST_TILED_IMAGE_TOKENS, (width, height)
    assert tiled_image_tokens(3072, 300) == MOST_TILED_IMAGE_TOKENS


# --- The worst case of each kind of part -------------------------------------------------
def test_an_image_costs_the_more_of_gemini_2s_tiles_and_gemini_3s_resolution():
    small = inline("image/png", png(100, 100))
    large = inline("image/jpeg", jpeg(2000, 1500))
    assert media_worst_case_tokens(request_of(small)) == 1120, "Gemini 3 at high, by default"
    assert media_worst_case_tokens(request_of(large)) == 6 * 258
    assert media_worst_case_tokens(request_of(small, large)) == 1120 + 6 * 258
    as_wide = inline("image/webp", webp_lossless(3072, 300))
    assert media_worst_case_tokens(request_of(as_wide)) == 24 * 258


@pytest.mark.parametrize(
    ("part", "config", "tokens"),
    [
        ({"media_resolution": {"level": "MEDIA_RESOLUTION_ULTRA_HIGH"}}, {}, 2240),
        ({"media_resolution": {"level": "media_resolution_ultra_high"}}, {}, 2240),
        ({"media_resolution": "MEDIA_RESOLUTION_ULTRA_HIGH"}, {}, 2240),
        ({}, {"media_resolution": "MEDIA_RESOLUTION_ULTRA_HIGH"}, 2240),
        ({}, {"media_resolution": "MEDIA_RESOLUTION_LOW"}, 280),
        ({}, {"media_resolution": "MEDIA_RESOLUTION_UNSPECIFIED"}, 1120),
        ({"media_resolution": {"level": "MEDIA_RESOLUTION_LOW"}},
         {"media_resolution": "MEDIA_RESOLUTION_ULTRA_HIGH"}, 280),  # the part's own first
        ({"media_resolution": {"level": "MEDIA_RESOLUTION_SUPER"}}, {}, 2240),
        ({"media_resolution": {"numTokens": 5000}}, {}, 5000),
        ({"media_resolution": {"num_tokens": 10}},
         {"media_resolution": "MEDIA_RESOLUTION_ULTRA_HIGH"}, 2240),  # no level of its own
    ],
)  # fmt: skip
def test_gemini_3_counts_an_image_by_the_media_resolution_asked(part, config, tokens):
    request = request_of(inline("image/png", png(100, 100), **part), **config)
    assert media_worst_case_tokens(request) == tokens


@pytest.mark.parametrize(
    "part",
    [
        {"file_data": {"mime_type": "image/jpeg", "file_uri": "gs://bucket/photo.jpg"}},
        inline("image/heic", HEIC),
        inline("image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
        inline("image/png", png(3073, 10)),  # past 3072 px: Gemini scales it down
    ],
    ids=["by URI", "HEIC", "garbage", "over 3072 px"],
)
def test_an_image_of_no_size_to_read_costs_the_most_an_image_can(part):
    assert media_worst_case_tokens(request_of(part)) == 24 * 258


def test_an_image_whose_own_tiles_pass_that_counts_them():
    big = inline("image/png", png(6000, 6000))
    assert media_worst_case_tokens(request_of(big)) == 258 * 8 * 8


def test_a_pdf_costs_its_pages_at_gemini_3s_count_or_a_thousand_by_uri():
    three = inline("application/pdf", pdf(3))
    assert media_worst_case_tokens(request_of(three)) == 3 * 560
    high = request_of(three, media_resolution="MEDIA_RESOLUTION_HIGH")
    assert media_worst_case_tokens(high) == 3 * 1120
    by_uri = {"file_data": {"mime_type": "application/pdf", "file_uri": "gs://b/a.pdf"}}
    assert media_worst_case_tokens(request_of(by_uri)) == 1000 * 560


def test_pdf_pages_compressed_in_object_streams_are_counted():
    assert pdf_pages(pdf(3)) == 3
    assert pdf_pages(pdf(40, compressed=37)) == 40, "hidden from a search of the file"
    assert pdf_pages(b"%PDF-1.4 /Type /Pages") == 1 and pdf_pages(b"not a pdf") == 1
    unreadable = pdf(40, compressed=37).replace(b"\nstream\nx", b"\nstream\n?")
    assert pdf_pages(unreadable) is None, "pages it cannot see are not counted as none"
    whole = pdf(40, compressed=37)
    assert pdf_pages(whole[: whole.index(b"\nendstream") - 4]) is None, "a stream cut short"
    request = request_of(inline("application/pdf", pdf(40, compressed=37)))
    assert media_worst_case_tokens(request) == 40 * 560
    assert sizes.media_tokens(request) == 40 * 258
    unknown = request_of(inline("application/pdf", unreadable))
    assert media_worst_case_tokens(unknown) == 1000 * 560


def test_object_streams_that_inflate_past_the_limit_are_not_read(monkeypatch):
    monkeypatch.setattr(sizes, "_MAX_OBJECT_STREAMS_BYTES", 20 * 33)
    assert pdf_pages(pdf(30, compressed=19)) == 30
    assert pdf_pages(pdf(30, compressed=21)) is None, "its pages are unknown, not none"


def test_text_inline_costs_a_token_a_byte_and_media_of_no_known_kind_the_largest_prompt():
    assert media_worst_case_tokens(request_of(inline("text/csv", "é,b\n".encode()))) == 5
    video = {"file_data": {"mime_type": "video/mp4", "file_uri": "gs://b/talk.mp4"}}
    untyped = {"file_data": {"file_uri": "https://example.com/file"}}
    assert media_worst_case_tokens(request_of(video)) == INPUT_LIMIT_TOKENS
    assert media_worst_case_tokens(request_of(untyped)) == INPUT_LIMIT_TOKENS
