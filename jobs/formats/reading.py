"""Reading a prompt file: detect its format, stream it line by line within the limits,
and refuse it as a whole, with the first errors by line number, if anything is wrong."""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, BinaryIO

from jobs import gemini_shape
from jobs.formats.anthropic_batch import anthropic_line
from jobs.formats.csv_lines import csv_delimiter, read_csv, without_line_end
from jobs.formats.json_lines import (
    LineError,
    PromptLine,
    content_problem,
    gemini_line,
    json_shape_problem,
    jsonl_line,
)
from jobs.formats.openai_batch import openai_line
from jobs.text import storable_text_error

FORMATS = ("text", "jsonl", "csv", "gemini_batch", "openai_batch", "anthropic_batch")

FORMAT_LABELS = {
    "text": "Plain text (one prompt per line)",
    "jsonl": "JSONL with a prompt field",
    "csv": "CSV with a prompt column",
    "gemini_batch": "Gemini Batch API JSONL",
    "openai_batch": "OpenAI Batch JSONL",
    "anthropic_batch": "Anthropic Message Batches JSONL",
}
MAX_ERRORS = 20
HEAD_BYTES = 64 * 1024
_CHUNK_BYTES = 64 * 1024
_INLINE_BASE64_BYTES = gemini_shape.MAX_INLINE_BYTES * 4 // 3
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF16_MESSAGE = "not UTF-8 text (this looks like UTF-16; save the file as UTF-8)"


class FileRejected(Exception):
    """The whole file is refused. `errors` holds the first MAX_ERRORS problems as (line,
    message), line None for the file as a whole (those come first). `total_errors`
    counts what was found before reading stopped; more than len(errors) means reading
    stopped at the 21st. str(exc) and messages() render "line 7: ..." lines."""

    def __init__(self, errors: list[tuple[int | None, str]], total_errors: int | None = None):
        ordered = sorted(errors, key=lambda error: (error[0] is not None, error[0] or 0))
        self.errors = ordered[:MAX_ERRORS]
        self.total_errors = len(errors) if total_errors is None else total_errors
        super().__init__("\n".join(self.messages()))

    def messages(self) -> list[str]:
        return [
            message if line is None else f"line {line}: {message}" for line, message in self.errors
        ]


class _StopReading(Exception):
    """Too many errors, or the whole file is refused: read no further."""


class _Errors:
    def __init__(self) -> None:
        self.found: list[tuple[int | None, str]] = []
        self.total = 0

    def add(self, line: int | None, message: str) -> None:
        self.total += 1
        if self.total > MAX_ERRORS:
            raise _StopReading
        self.found.append((line, message))

    def stop(self, line: int | None, message: str) -> None:
        self.add(line, message)
        raise _StopReading


def detect_format(head: bytes, filename: str = "") -> str:
    """The format of a file from its name and first bytes (up to HEAD_BYTES)."""
    suffix = filename.lower().rpartition(".")[2] if "." in filename else ""
    if suffix in ("csv", "tsv"):
        return "csv"
    if suffix == "txt":
        return "text"
    if head.startswith(_UTF16_BOMS):
        raise FileRejected([(1, _UTF16_MESSAGE)])
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head.removeprefix(codecs.BOM_UTF8))
    except UnicodeDecodeError as exc:
        raise FileRejected([(head[: exc.start].count(b"\n") + 1, "not UTF-8 text")]) from None
    lines = text.split("\n")
    number, first = next(((n, s.strip()) for n, s in enumerate(lines, 1) if s.strip()), (0, ""))
    if not first:
        raise FileRejected([(None, "The file is empty.")])
    if first.startswith("{"):
        return _json_format(number, first, complete=number < len(lines) or len(head) < HEAD_BYTES)
    if suffix in ("jsonl", "json", "ndjson"):
        raise FileRejected([(number, "expected one JSON object per line")])
    cells = next(csv.reader([first], delimiter=csv_delimiter(first)))
    if len(cells) > 1 and "prompt" in (cell.strip().lower() for cell in cells):
        return "csv"
    return "text"


def _json_format(number: int, first: str, *, complete: bool) -> str:
    if complete:
        if problem := json_shape_problem(first):
            raise FileRejected([(number, problem)])
        try:
            keys = set(json.loads(first))
        except json.JSONDecodeError as exc:
            raise FileRejected(
                [(number, f"{_json_error(exc)}; name the file .txt to upload it as plain text")]
            ) from None
    else:
        # A first line longer than the head: its keys are all we can see.
        keys = set(re.findall(r'"(\w+)"\s*:', first))
    if "custom_id" in keys and "params" in keys:
        return "anthropic_batch"
    if "custom_id" in keys and "body" in keys:
        return "openai_batch"
    # A whole request under an id is FlexDash's JSONL; under a key, Gemini's.
    if "key" in keys:
        return "gemini_batch"
    if "prompt" in keys or "id" in keys:
        return "jsonl"
    if "request" in keys:
        return "gemini_batch"
    raise FileRejected(
        [
            (
                number,
                "a JSON object in no format FlexDash reads: expected 'prompt' (JSONL), "
                "'key' and 'request' (Gemini Batch), or 'custom_id' with 'body' (OpenAI Batch) "
                "or 'params' (Anthropic Message Batches)",
            )
        ]
    )


def parse(
    stream: BinaryIO,
    fmt: str | None = None,
    *,
    filename: str = "",
    max_bytes: int = 200 * 1024 * 1024,
    max_lines: int = 100_000,
    max_prompt_chars: int = 1_000_000,
    max_line_bytes: int | None = None,
) -> Iterator[PromptLine]:
    """Yield the file's prompts one by one; raise FileRejected when the file ends (or
    reading stops) if anything was wrong. Detects the format when `fmt` is None.
    A line longer than `max_line_bytes` is refused unread (by default, room for a
    prompt and a system instruction at the limit, even fully \\u-escaped, and for
    Gemini's limit of inline images and documents in base64)."""
    head = _read_head(stream)
    if fmt is None:
        fmt = detect_format(head, filename)
    elif fmt not in FORMATS:
        raise ValueError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    errors = _Errors()
    first_line_with: dict[str, int] = {}
    count = 0
    chunks = itertools.chain([head], iter(partial(stream.read, _CHUNK_BYTES), b""))
    if max_line_bytes is None:
        max_line_bytes = 12 * 2 * max_prompt_chars + _INLINE_BASE64_BYTES + HEAD_BYTES
    lines = _text_lines(_raw_lines(chunks, errors, max_bytes, max_line_bytes), errors)
    try:
        for prompt_line in _READERS[fmt](lines, errors, max_prompt_chars):
            count += 1
            if count > max_lines:
                errors.stop(None, f"The file has more than {max_lines:,} prompts; split it.")
            if problem := content_problem(prompt_line, max_prompt_chars):
                errors.add(prompt_line.line, problem)
                continue
            key = prompt_line.custom_id or str(prompt_line.line)
            first = first_line_with.setdefault(key, prompt_line.line)
            if first != prompt_line.line:
                errors.add(prompt_line.line, f"id {key!r} was already used on line {first}")
            elif not errors.total:
                yield prompt_line
    except _StopReading:
        pass
    if not errors.total and not count:
        errors.found.append((None, "The file has no prompts."))
        errors.total = 1
    if errors.total:
        raise FileRejected(errors.found, errors.total)


def _read_head(stream: BinaryIO) -> bytes:
    head = b""
    while len(head) < HEAD_BYTES and (more := stream.read(HEAD_BYTES - len(head))):
        head += more
    return head


def _raw_lines(
    chunks: Iterable[bytes], errors: _Errors, max_bytes: int, max_line_bytes: int
) -> Iterator[tuple[int, bytes]]:
    """(number, bytes with their b"\\n") for every line, never more than one line held."""
    number = 0
    pending: list[bytes] = []
    pending_size = 0
    skipping = False  # inside a line already reported as too long
    too_long = f"the line is longer than {_size(max_line_bytes)}"
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            errors.stop(None, file_too_large(max_bytes))
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            number += 1
            piece = chunk[start : end + 1]
            start = end + 1
            if skipping:
                skipping = False
            elif pending_size + len(piece) - 1 > max_line_bytes:  # a line ends within a chunk
                errors.add(number, too_long)
            elif pending:
                yield number, b"".join([*pending, piece])
            else:
                yield number, piece
            pending.clear()
            pending_size = 0
        if start < len(chunk) and not skipping:
            pending.append(chunk[start:])
            pending_size += len(chunk) - start
            if pending_size > max_line_bytes:
                errors.add(number + 1, too_long)
                skipping = True
                pending.clear()
                pending_size = 0
    if pending:
        yield number + 1, b"".join(pending)


def _text_lines(
    raw_lines: Iterable[tuple[int, bytes]], errors: _Errors
) -> Iterator[tuple[int, str]]:
    # Lines split on b"\n" decode on their own: that byte never occurs inside a
    # multi-byte UTF-8 sequence, and each error names its line exactly.
    for number, raw in raw_lines:
        if number == 1:
            if raw.startswith(_UTF16_BOMS):
                errors.stop(1, _UTF16_MESSAGE)
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            errors.add(number, "not UTF-8 text")
            continue
        if problem := storable_text_error(text):
            errors.add(number, problem)
            continue
        yield number, text


_Reader = Callable[[Iterator[tuple[int, str]], _Errors, int], Iterator[PromptLine]]


def _read_text(lines: Iterator[tuple[int, str]], errors: _Errors, _: int) -> Iterator[PromptLine]:
    for number, text in lines:
        prompt = text.rstrip("\r\n")
        if prompt.strip():
            yield PromptLine(number, "", gemini_shape.simple(prompt), None, prompt)


def _json_reader(extract: Callable[[int, dict, str], PromptLine]) -> _Reader:
    def read(lines: Iterator[tuple[int, str]], errors: _Errors, _: int) -> Iterator[PromptLine]:
        for number, text in lines:
            if not text.strip():
                continue
            if problem := json_shape_problem(text):
                errors.add(number, problem)
                continue
            source = without_line_end(text)
            try:
                value = json.loads(source)
            except json.JSONDecodeError as exc:
                errors.add(number, _json_error(exc))
                continue
            if not isinstance(value, dict):
                errors.add(number, f"expected a JSON object, found {_json_kind(value)}")
                continue
            try:
                yield extract(number, value, source)
            except LineError as exc:
                errors.add(number, str(exc))

    return read


def _json_error(exc: json.JSONDecodeError) -> str:
    return f"not valid JSON ({exc.msg} at column {exc.colno})"


def _json_kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number")


def file_too_large(max_bytes: int) -> str:
    """What a file over the size limit is told, wherever the limit is met."""
    return f"The file is larger than {_size(max_bytes)}; split it."


def _size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size:,} bytes"
    return f"{size / (1024 * 1024):,.1f}".removesuffix(".0") + " MB"


_READERS: dict[str, _Reader] = {
    "text": _read_text,
    "csv": read_csv,
    "jsonl": _json_reader(jsonl_line),
    "gemini_batch": _json_reader(gemini_line),
    "openai_batch": _json_reader(openai_line),
    "anthropic_batch": _json_reader(anthropic_line),
}
