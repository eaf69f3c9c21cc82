"""Limits on what an upload may cost the server: previews capped per user and
removed every minute, a file over the limit dropped while it streams in, lines
too long, too deeply nested or too wide refused by number before they are
decoded, and the API answering JSON even for errors it did not expect."""

from __future__ import annotations

import io
import json
import os
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.test import Client
from django.utils import timezone
from django_q.models import Schedule

from jobs import tasks
from jobs.engine import control, submitting, tokens
from jobs.models import DispatcherSlot, Job, Run
from jobs.runs import queries as run_queries
from jobs.runs import services as runs
from jobs.runs.reading import RunRejected
from tests.support import MODEL, as_user, start_up

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]

MiB = 1024 * 1024


def upload(client, filename: str, content: bytes, **fields):
    # The file first, as the page's form sends it: the other fields follow it.
    data = {"file": SimpleUploadedFile(filename, content), "model": MODEL, "tier": "flex"}
    return client.post("/runs/new/", {**data, "max_attempts": "8", **fields})


def api_client(user, **options) -> Client:
    """tests.support's api_client, with Client `options` too (raise_request_exception)."""
    _, token = tokens.api_token_create(user=user, name="script")
    return Client(headers={"Authorization": f"Bearer {token}"}, **options)


def post_file(client: Client, filename: str, content: bytes, **fields):
    return client.post("/api/batches", {"file": SimpleUploadedFile(filename, content), **fields})


def text_file(size: int) -> bytes:
    """Plain text of `size` bytes, in prompts of a thousand bytes."""
    lines, rest = divmod(size, 1000)
    return (b"p" * 999 + b"\n") * lines + b"q" * rest


# --- Previews: capped per user, removed every minute --------------------------------
def folder_of(user, settings) -> Path:
    return Path(settings.VAR_DIR) / "uploads" / str(user.pk)


def test_six_uploads_keep_five_previews_and_say_the_oldest_was_discarded(client, ada, settings):
    content = text_file(MiB)
    as_user(client, ada)
    # The finding, with no cap: each preview is the file and the JSON record of
    # what the preview found, so six uploads left twelve files behind.
    settings.FLEX_PREVIEW_MAX_COUNT = 100
    for _ in range(6):
        upload(client, "p.txt", content)
    assert len(list(folder_of(ada, settings).iterdir())) == 12
    for path in folder_of(ada, settings).iterdir():
        path.unlink()

    settings.FLEX_PREVIEW_MAX_COUNT = 5
    previews = [upload(client, "p.txt", content)["Location"] for _ in range(5)]
    response = upload(client, "p.txt", content, name="the sixth")
    page = client.get(response["Location"]).content.decode()
    assert "1 older unconfirmed preview discarded to make room: up to 5 previews" in page
    files = sorted(path.suffix for path in folder_of(ada, settings).iterdir())
    assert files == [".json"] * 5 + [".upload"] * 5
    assert client.get(previews[0]).status_code == 404
    assert all(client.get(url).status_code == 200 for url in previews[1:])
    # The page says so before anyone uploads.
    upload_page = client.get("/runs/new/").content.decode()
    assert "up to 5 unconfirmed previews are kept, for a day" in upload_page


def test_previews_are_capped_in_bytes_too(client, ada, settings):
    settings.FLEX_PREVIEW_MAX_BYTES = 2 * MiB + MiB // 2
    as_user(client, ada)
    first, second, third = (upload(client, "p.txt", text_file(MiB))["Location"] for _ in range(3))
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == client.get(third).status_code == 200
    held = sum(path.stat().st_size for path in folder_of(ada, settings).iterdir())
    assert 2 * MiB < held <= settings.FLEX_PREVIEW_MAX_BYTES


def test_the_minute_task_removes_every_users_expired_previews(client, ada, bob, settings):
    stale = [
        upload(as_user(client, person), "p.txt", b"one\n")["Location"] for person in (ada, bob)
    ]
    fresh = upload(client, "p.txt", b"two\n")["Location"]  # bob's
    day_ago = time.time() - 24 * 3600 - 60
    for url in stale:
        for path in Path(settings.VAR_DIR, "uploads").glob(f"*/{token_of(url)}.*"):
            os.utime(path, (day_ago, day_ago))

    # No one uploads again (each upload sweeps too): the minute Schedule's task removes them.
    control.dispatch_schedule_ensure()
    assert Schedule.objects.get(name=control.DISPATCH_SCHEDULE_NAME).func == "jobs.tasks.dispatch"
    # Every dispatcher slot is busy, so the task returns once it has swept.
    DispatcherSlot.objects.create(
        number=0, owner="elsewhere", expires_at=timezone.now() + timedelta(minutes=5)
    )
    assert tasks.dispatch().startswith("busy")
    assert list(folder_of(ada, settings).iterdir()) == []
    assert sorted(path.stem for path in folder_of(bob, settings).iterdir()) == [token_of(fresh)] * 2
    assert client.get(fresh).status_code == 200


def token_of(preview_url: str) -> str:
    return preview_url.rstrip("/").rsplit("/", 1)[1]


def test_previews_may_not_be_smaller_than_the_largest_file():
    result = start_up(FLEX_RUN_MAX_BYTES="1000", FLEX_PREVIEW_MAX_BYTES="999")
    assert result.returncode != 0
    assert "FLEX_PREVIEW_MAX_BYTES must not be smaller than FLEX_RUN_MAX_BYTES" in result.stderr


# --- A file over the limit is dropped while it streams in --------------------------
class CountingTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Django's own handler that writes an upload to a temporary file,
    counting the bytes it was given to write."""

    written = 0

    def receive_data_chunk(self, raw_data, start):
        CountingTemporaryFileUploadHandler.written += len(raw_data)
        return super().receive_data_chunk(raw_data, start)


COUNTING = f"{__name__}.CountingTemporaryFileUploadHandler"
DJANGO_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler", COUNTING]
FLEXDASH_HANDLERS = ["jobs.runs.limits.RunFileLimit", *DJANGO_HANDLERS]


@pytest.fixture
def limit_of_1_mib(settings):
    settings.FLEX_RUN_MAX_BYTES = MiB
    settings.FILE_UPLOAD_HANDLERS = FLEXDASH_HANDLERS
    CountingTemporaryFileUploadHandler.written = 0


def test_a_20_mb_upload_is_refused_before_any_of_it_is_written(
    client, ada, settings, limit_of_1_mib
):
    content = text_file(20 * 1000 * 1000)
    as_user(client, ada)
    # The finding: with Django's own handlers all 20 MB were written to disk
    # before the file was read and refused.
    settings.FILE_UPLOAD_HANDLERS = DJANGO_HANDLERS
    page = upload(client, "p.txt", content).content.decode()
    assert "The file is larger than 1 MB; split it." in page
    assert CountingTemporaryFileUploadHandler.written == len(content)

    # Its Content-Length alone says it is over the limit: not a byte is written.
    settings.FILE_UPLOAD_HANDLERS = FLEXDASH_HANDLERS
    CountingTemporaryFileUploadHandler.written = 0
    response = upload(client, "p.txt", content)
    assert response.status_code == 200
    page = response.content.decode()
    assert "The file was refused; nothing was created." in page
    assert "The file is larger than 1 MB; split it." in page
    assert "This field is required" not in page

    response = post_file(api_client(ada), "p.txt", content)
    assert response.status_code == 422
    assert response.json() == {
        "detail": "The file was refused; nothing was created: "
        "The file is larger than 1 MB; split it.",
        "errors": {"file": ["The file is larger than 1 MB; split it."]},
    }
    assert CountingTemporaryFileUploadHandler.written == 0
    assert not Run.objects.exists()


def test_a_file_that_passes_the_limit_is_dropped_there_and_the_form_kept(
    client, ada, settings, limit_of_1_mib
):
    # A body that could still hold a file within the limit (other fields may
    # be megabytes) is read, and its file dropped at the first chunk past it.
    content = text_file(3 * MiB)
    response = upload(as_user(client, ada), "p.txt", content, name="My eval", tier="standard")
    page = response.content.decode()
    assert "The file is larger than 1 MB; split it." in page
    assert 'value="My eval"' in page
    assert 'value="standard" id="id_tier_1" required checked' in page
    assert CountingTemporaryFileUploadHandler.written <= MiB

    CountingTemporaryFileUploadHandler.written = 0
    response = post_file(api_client(ada), "p.txt", content, name="nightly")
    assert response.status_code == 422
    assert response.json()["errors"] == {"file": ["The file is larger than 1 MB; split it."]}
    assert CountingTemporaryFileUploadHandler.written <= MiB
    assert not Run.objects.exists()


def test_a_file_within_the_limit_is_kept_whole(client, ada, limit_of_1_mib):
    content = text_file(MiB)
    response = post_file(api_client(ada), "p.txt", content)
    assert response.status_code == 201, response.content
    assert Run.objects.get().jobs.count() == MiB // 1000 + 1
    assert CountingTemporaryFileUploadHandler.written == 0  # small enough for memory
    response = upload(as_user(client, ada), "p.txt", content)
    assert response.status_code == 302


# --- Lines too deep, too long or too wide are refused by number -----------------------
DEEP = '{"prompt": "x", "pad": ' + "[" * 100_000 + "]" * 100_000 + "}"


def test_a_line_nested_100000_deep_is_refused_by_number_not_a_500(client, ada):
    # The finding: json.loads recurses once per level and gives up.
    with pytest.raises(RecursionError):
        json.loads(DEEP)
    refused = "line 2: the JSON is nested deeper than 64 levels"
    content = f'{{"prompt": "first"}}\n{DEEP}\n'.encode()
    for fmt in ("", "jsonl"):
        response = post_file(api_client(ada), "p.jsonl", content, format=fmt)
        assert response.status_code == 422
        assert response.json()["errors"] == {"file": [refused]}
        page = upload(as_user(client, ada), "p.jsonl", content, format=fmt).content.decode()
        assert "The file was refused; nothing was created." in page
        assert refused in page
    # First, it is the line the format is detected from.
    response = post_file(api_client(ada), "p.jsonl", f"{DEEP}\n".encode())
    assert response.json()["errors"] == {"file": [refused.replace("line 2", "line 1")]}
    assert not Job.objects.exists()


def test_a_json_body_too_deep_or_too_wide_is_refused_before_it_is_decoded(ada):
    # Ninja answered the deep one 400 too, but only once json.loads had given up.
    wide = '{"prompt": "x", "pad": [' + "0," * 100_000 + "0]}"
    for body in (DEEP, wide):
        response = api_client(ada).post("/api/jobs", body, content_type="application/json")
        assert response.status_code == 400
        assert response.json() == {"detail": "Cannot parse request body"}
    assert not Job.objects.exists()


def preview(content: bytes) -> runs.RunPreview:
    return runs.run_preview(
        stream=io.BytesIO(content), filename="p.jsonl", spec=submitting.JobSpec(model=MODEL)
    )


def peak_bytes_of(read) -> int:
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def refusal_of(content: bytes) -> list[str]:
    with pytest.raises(RunRejected) as caught:
        preview(content)
    return caught.value.messages()


def test_a_22_mb_line_is_refused_unread_in_bounded_memory(settings):
    # The limit as it was when this was found (the default now has room for 20 MB of media).
    settings.FLEX_RUN_MAX_LINE_BYTES = 12 * settings.FLEX_MAX_PROMPT_CHARS + 65_536
    # The finding, at a hundredth of the size: decoded, each {} of the line
    # costs some twenty times its three bytes.
    wide = "[" + "{}," * 75_000 + "{}]"
    assert peak_bytes_of(lambda: json.loads(wide)) > 15 * len(wide)

    line = b'{"prompt": "x", "pad": [' + b"{}," * 7_499_999 + b"{}]}"
    assert len(line) > 22_500_000
    content = b'{"prompt": "first"}\n' + line + b"\n"
    messages: list[str] = []
    peak = peak_bytes_of(lambda: messages.extend(refusal_of(content)))
    assert messages == ["line 2: the line is longer than 11.5 MB"]
    assert peak < 100 * MiB


def test_a_line_within_the_length_with_millions_of_values_is_refused_before_decoding():
    line = b'{"prompt": "x", "pad": [' + b"{}," * 2_999_999 + b"{}]}"
    content = b'{"prompt": "first"}\n' + line + b"\n"
    messages: list[str] = []
    peak = peak_bytes_of(lambda: messages.extend(refusal_of(content)))
    assert messages == ["line 2: the JSON has more than 100,000 values"]
    assert peak < 100 * MiB


def test_the_line_limit_leaves_room_for_the_longest_prompt_and_system_instruction(settings):
    # Every character of both \u-escaped: 6 bytes each.
    longest = "é" * settings.FLEX_MAX_PROMPT_CHARS
    line = json.dumps({"id": "a", "prompt": longest, "system_instruction": longest})
    assert len(line) > 12_000_000
    estimate = preview(line.encode() + b"\n").estimate
    assert estimate.prompts == 1


def test_the_line_limit_is_a_setting_and_names_the_line(settings):
    settings.FLEX_RUN_MAX_LINE_BYTES = 1000
    content = b'{"prompt": "short"}\n{"prompt": "' + b"x" * 2000 + b'"}\n{"prompt": "ok"}\n'
    assert refusal_of(content) == ["line 2: the line is longer than 1,000 bytes"]


# --- The API answers JSON, also for errors it did not expect --------------------------
@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_is_a_json_500_and_its_traceback_is_logged(
    ada, settings, monkeypatch, caplog, debug
):
    def broken(viewer):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(run_queries, "run_list", broken)
    settings.DEBUG = debug
    response = api_client(ada, raise_request_exception=False).get("/api/batches")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json; charset=utf-8"
    detail = response.json()["detail"]
    assert detail.startswith("Internal server error; it has been logged.")
    assert ("RuntimeError: the database went away" in detail) is debug
    [record] = [record for record in caplog.records if record.name == "django.request"]
    assert record.getMessage() == "Internal Server Error: /api/batches"
    assert record.exc_info[0] is RuntimeError
    # Signalled as Django signals an uncaught exception: the test client re-raises it.
    with pytest.raises(RuntimeError):
        api_client(ada).get("/api/batches")


def test_what_django_answers_400_or_403_is_answered_as_json(ada, settings, monkeypatch):
    def forbidden(viewer):
        raise PermissionDenied

    monkeypatch.setattr(run_queries, "run_list", forbidden)
    response = api_client(ada).get("/api/batches")
    assert (response.status_code, response.json()) == (403, {"detail": "Permission denied."})
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    fields = {f"field{i}": "x" for i in range(5)}
    response = post_file(api_client(ada), "p.txt", b"one\n", **fields)
    assert (response.status_code, response.json()) == (400, {"detail": "Bad request."})
    response = api_client(ada).post(
        "/api/batches", b"--x\r\n", content_type="multipart/form-data; boundary="
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Bad request: Invalid boundary")
