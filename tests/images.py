"""Image and PDF bytes of a chosen size, built by hand for the tests (no imaging library):
a whole PNG any decoder opens, the headers of a JPEG and of each kind of WebP past their
size fields, and enough of a PDF to count its pages, plain or in an object stream."""

from __future__ import annotations

import base64
import struct
import zlib


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int) -> bytes:
    """A whole black PNG of width x height px (1-bit greyscale, so it stays small)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = (b"\0" + b"\0" * -(-width // 8)) * height  # filter byte 0, then the row's bits
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )


def jpeg(width: int, height: int) -> bytes:
    """A baseline JPEG's header up to its frame: SOI, a JFIF APP0, a comment, a fill byte,
    SOF0 of three components, then the scan header (no scan data)."""
    app0 = b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    comment = b"made for a test"
    frame = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\0\x02\x11\x01\x03\x11\x01"
    scan = b"\x03\x01\0\x02\x11\x03\x11\0\x3f\0"
    return (
        b"\xff\xd8"
        + b"\xff\xe0" + struct.pack(">H", 2 + len(app0)) + app0
        + b"\xff\xfe" + struct.pack(">H", 2 + len(comment)) + comment
        + b"\xff"
        + b"\xff\xc0" + struct.pack(">H", 2 + len(frame)) + frame
        + b"\xff\xda" + struct.pack(">H", 2 + len(scan)) + scan
    )  # fmt: skip


def _riff(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_lossy(width: int, height: int) -> bytes:
    """A lossy WebP (VP8 key frame) header: frame tag, start code, 14-bit sizes."""
    return _riff(b"VP8 ", b"\x10\x02\0\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\0" * 8)


def webp_lossless(width: int, height: int) -> bytes:
    """A lossless WebP (VP8L) header: signature 0x2f, then width-1 and height-1 in 14 bits."""
    bits = (width - 1) | (height - 1) << 14 | 1 << 28  # and the alpha bit
    return _riff(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\0" * 4)


def webp_extended(width: int, height: int) -> bytes:
    """An extended WebP (VP8X) header: flags, then canvas width-1 and height-1 in 24 bits."""
    sizes = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return _riff(b"VP8X", b"\x10\0\0\0" + sizes)


def pdf(pages: int, *, compressed: int = 0) -> bytes:
    """A PDF of `pages` pages, the last `compressed` of them as objects inside a Flate
    object stream (as PDF 1.5 writers do), where no `/Type /Page` shows in the file."""
    plain = pages - compressed
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Count %d >>" % pages]
    objects += [b"<< /Type /Page /Parent 2 0 R >>"] * plain
    if compressed:
        inside = b"\n".join([b"<< /Type /Page /Parent 2 0 R >>"] * compressed)
        stream = zlib.compress(inside)
        objects.append(
            b"<< /Type /ObjStm /N %d /First 0 /Length %d /Filter /FlateDecode >>\nstream\n"
            % (compressed, len(stream))
            + stream
            + b"\nendstream"
        )
    body = b"".join(b"%d 0 obj\n%s\nendobj\n" % (n, o) for n, o in enumerate(objects, 1))
    return b"%PDF-1.5\n" + body + b"%%EOF\n"


def inline(mime_type: str, raw: bytes, **part) -> dict:
    """A request part carrying `raw` inline."""
    return {"inline_data": {"mime_type": mime_type, "data": base64.b64encode(raw).decode()}, **part}
