"""A pipeline's table read from any run file: every row plain data under its columns, its
id from the row or its line, and the file refused as a whole, bad lines listed by number."""

from __future__ import annotations

import io
import json

import pytest

from jobs.formats import FileRejected, TableRow, parse_rows

LIMITS = {"max_bytes": 1_000_000, "max_lines": 1_000, "max_line_bytes": 10_000}


def rows(data: bytes, fmt: str | None = None, *, filename: str = "", **limits) -> list[TableRow]:
    return list(parse_rows(io.BytesIO(data), fmt, filename=filename, **{**LIMITS, **limits}))


def refusal(data: bytes, fmt: str | None = None, **options) -> list[str]:
    with pytest.raises(FileRejected) as caught:
        rows(data, fmt, **options)
    return caught.value.messages()


def jsonl(*lines: object) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def test_csv_rows_are_their_cells_under_the_header_names():
    data = b" id , Text ,score\na1,Paris is in France,3\n\n,Rome,\nb2,Oslo\n"
    assert rows(data) == [
        TableRow(2, "a1", {"id": "a1", "Text": "Paris is in France", "score": "3"},
                 "a1,Paris is in France,3"),
        TableRow(4, "4", {"id": "", "Text": "Rome", "score": ""}, ",Rome,"),
        TableRow(5, "b2", {"id": "b2", "Text": "Oslo", "score": ""}, "b2,Oslo"),
    ]  # fmt: skip


def test_a_csv_needs_no_prompt_column_and_is_known_by_its_first_line():
    (row,) = rows(b"city;country\nLyon;France\n")
    assert row.values == {"city": "Lyon", "country": "France"}
    (row,) = rows(b"city\tcountry\nLyon\tFrance\n", filename="places.tsv")
    assert row.values == {"city": "Lyon", "country": "France"}


def test_a_multi_line_cell_is_one_row_numbered_by_its_first_line():
    data = b'key,text\nk1,"first line\nsecond line"\nk2,after\n'
    first, second = rows(data)
    assert (first.line, first.custom_id) == (2, "k1")
    assert first.values["text"] == "first line\nsecond line"
    assert first.source == 'k1,"first line\nsecond line"'
    assert (second.line, second.values["text"]) == (4, "after")


def test_crlf_and_a_byte_order_mark_are_not_part_of_any_value():
    (row,) = rows(b"\xef\xbb\xbfid,text\r\nx,hello\r\n")
    assert row == TableRow(2, "x", {"id": "x", "text": "hello"}, "x,hello")
    (row,) = rows(b'\xef\xbb\xbf{"text": "hi"}\r\n')
    assert row == TableRow(1, "1", {"text": "hi"}, '{"text": "hi"}')
    (row,) = rows(b"\xef\xbb\xbfhello there\r\n", filename="notes.txt")
    assert row == TableRow(1, "1", {"text": "hello there"}, "hello there")


def test_a_record_with_more_cells_than_the_header_is_refused_by_line():
    assert refusal(b'id,text\na,one\nb,two,three\nc,"x,y"\n') == [
        "line 3: 3 fields but the header has 2; quote fields that contain ','"
    ]


def test_a_quote_left_open_is_refused():
    (message,) = refusal(b'id,text\na,"never closed\n')
    assert message.startswith("line 2: not valid CSV (")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"id,,text,", "line 1: the header row leaves column 2, 4 without a name"),
        (b"id,text, text,id", "line 1: the header row names 'id', 'text' more than once"),
    ],
)
def test_header_names_must_be_there_and_distinct(header, message):
    assert refusal(header + b"\na,b,c,d\n") == [message]


def test_json_lines_of_any_format_are_their_top_level_keys():
    data = jsonl(
        {"id": "a", "text": "Hamlet", "tags": ["play"], "year": 1603},
        {"key": "g1", "request": {"contents": [{"parts": [{"text": "Hi"}]}]}},
        {"custom_id": 7, "body": {"model": "gpt"}, "method": "POST"},
        {"custom_id": "c1", "params": {"max_tokens": 5}},
        {"text": "no id"},
    )
    found = rows(data)
    assert [row.custom_id for row in found] == ["a", "g1", "7", "c1", "5"]
    assert found[0].values == {"id": "a", "text": "Hamlet", "tags": ["play"], "year": 1603}
    assert found[1].values["request"] == {"contents": [{"parts": [{"text": "Hi"}]}]}
    assert found[2].source == json.dumps({"custom_id": 7, "body": {"model": "gpt"},
                                          "method": "POST"})  # fmt: skip


def test_bad_json_lines_are_listed_with_their_numbers():
    data = b'{"id": "a"}\n[1, 2]\n{"id": \n\n"text"\n{"id": ["x"]}\n{"id": "b"}\n'
    assert refusal(data) == [
        "line 2: expected a JSON object, found a list",
        "line 3: not valid JSON (Expecting value at column 8)",
        "line 5: expected a JSON object, found a string",
        "line 6: 'id' must be a string",
    ]


def test_json_nested_too_deep_is_refused_before_it_is_read():
    deep = b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}\n"
    (message,) = refusal(b'{"id": 1}\n' + deep)
    assert message.startswith("line 2: ")


def test_plain_text_rows_are_their_non_blank_lines():
    data = b"The sky is blue.\n\n   \n  Grass, they say, is green.  \n"
    assert rows(data, filename="claims.txt") == [
        TableRow(1, "1", {"text": "The sky is blue."}, "The sky is blue."),
        TableRow(4, "4", {"text": "  Grass, they say, is green.  "},
                 "  Grass, they say, is green.  "),
    ]  # fmt: skip


def test_a_format_given_is_used_whatever_the_file_looks_like():
    (row,) = rows(b"a,b\n", "text")
    assert row.values == {"text": "a,b"}
    (row,) = rows(jsonl({"key": "k", "request": {}}), "gemini_batch")
    assert row.custom_id == "k"
    with pytest.raises(ValueError, match="Unknown format 'xml'"):
        rows(b"x\n", "xml")


def test_a_row_id_used_twice_is_refused_naming_the_first_line():
    assert refusal(b"id,text\na,1\nb,2\na,3\n") == ["line 4: id 'a' was already used on line 2"]
    assert refusal(jsonl({"id": "x"}, {"id": "x"})) == ["line 2: id 'x' was already used on line 1"]
    # A row without an id is known by its line, which another row's id can take.
    assert refusal(jsonl({"id": "2"}, {"text": "mine is 2"})) == [
        "line 2: id '2' was already used on line 1"
    ]


def test_an_id_over_the_limit_is_refused():
    (message,) = refusal(jsonl({"id": "x" * 256}))
    assert message == "line 1: the id is 256 characters; the limit is 255"


def test_nothing_is_yielded_after_a_bad_row_and_the_file_is_refused_at_the_end():
    stream = parse_rows(io.BytesIO(b"id,text\na,1\nb,2,3\nc,4\n"), **LIMITS)
    assert next(stream).custom_id == "a"
    with pytest.raises(FileRejected) as caught:
        next(stream)
    assert caught.value.messages() == ["line 3: 3 fields but the header has 2; quote fields "
                                       "that contain ','"]  # fmt: skip


@pytest.mark.parametrize("data", [b"", b"\n  \n", b"id,text\n\n"])
def test_a_file_without_rows_is_refused(data):
    assert refusal(data) == ["The file has no rows."]


def test_the_limits_refuse_the_file():
    assert refusal(b"a\nb\nc\n", max_lines=2) == ["The file has more than 2 rows; split it."]
    assert refusal(b"x" * 100 + b"\n", max_bytes=50) == [
        "The file is larger than 50 bytes; split it."
    ]
    assert refusal(b"short\n" + b"y" * 40 + b"\nshort too\n", max_line_bytes=20) == [
        "line 2: the line is longer than 20 bytes"
    ]


def test_text_that_is_not_utf8_is_refused_by_line():
    assert refusal(b"fine\ncaf\xe9\n", filename="t.txt") == ["line 2: not UTF-8 text"]
    (message,) = refusal("id,text\n".encode("utf-16"))
    assert message.startswith("line 1: not UTF-8 text (this looks like UTF-16")


def test_errors_stop_being_listed_at_twenty_but_are_counted():
    data = b"".join(b"[%d]\n" % n for n in range(30))
    with pytest.raises(FileRejected) as caught:
        rows(data, "jsonl")
    assert len(caught.value.errors) == 20
    assert caught.value.total_errors == 21
