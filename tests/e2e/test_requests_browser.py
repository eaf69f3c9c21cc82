"""A whole request from the submit page in a real browser: a prompt with an attached PNG
and a JSON Schema, refused once for a schema that is not one, then run through a real
qcluster and the shared simulator, to its structured answer shown as a table on the job
page. Debian's Chromium through Playwright; screenshots go to test-results/e2e/."""

from __future__ import annotations

import base64
import json
import re
import urllib.request

import pytest
from playwright.sync_api import expect

from jobs.models import Job, State
from tests.e2e.browsing import SCREENSHOTS, log_in
from tests.support import tag

pytestmark = [pytest.mark.e2e, pytest.mark.engine, pytest.mark.django_db(transaction=True)]

PNG_DATA = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
# The simulator answers the smallest JSON the schema accepts: an enum's first value, an
# integer's minimum, minItems items.
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris"]},
        "landmarks": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": ["Eiffel Tower"]},
                    "height_m": {"type": "integer", "minimum": 330},
                },
                "required": ["name", "height_m"],
            },
        },
    },
    "required": ["city", "landmarks"],
}


def _attach_png(page) -> None:
    page.get_by_label("Attach images or PDFs (optional)").set_input_files(
        {"name": "skyline.png", "mimeType": "image/png", "buffer": base64.b64decode(PNG_DATA)}
    )


def _sent(simulator_url: str, word: str) -> list[dict]:
    """The request bodies the simulator received for this test's prompt."""
    with urllib.request.urlopen(f"{simulator_url}/_sim/requests?last=200", timeout=10) as reply:
        recorded = json.load(reply)
    return [item["body"] for item in recorded if word in json.dumps(item["body"])]


def test_a_schema_and_an_image_go_from_the_submit_page_to_a_table_on_the_job_page(
    live_server, simulator, cluster, browser, ada_password
):
    base = live_server.url
    word = tag()
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    log_in(page, base, ada_password)

    page.goto(f"{base}/jobs/new/")
    page.get_by_label("Prompt").fill(
        f"e2e request {word}: which city is this, and what stands there?"
    )
    _attach_png(page)
    page.get_by_text("Answer as JSON, with a schema").click()
    page.get_by_label("JSON (structured output)").check()
    schema_box = page.get_by_label("JSON Schema (optional)")

    # A schema that is not one is refused on its field, and nothing is created.
    schema_box.fill('{"type": "strin"}')
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".banner-error")).to_contain_text("The job was not submitted.")
    expect(page.locator(".field-error")).to_contain_text(
        "The schema at ['type'] is not a valid JSON Schema"
    )
    assert not Job.objects.exists()
    # The section stays open with what was typed; a browser never keeps a chosen file.
    expect(schema_box).to_be_visible()
    expect(schema_box).to_have_value('{"type": "strin"}')
    page.screenshot(path=SCREENSHOTS / "request-schema-error.png", full_page=True)

    schema_box.fill(json.dumps(SCHEMA, indent=2))
    _attach_png(page)
    page.get_by_role("button", name="Submit").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/jobs/\d+/$"))
    job = Job.objects.get()

    # The request as sent: the image by type and size, the schema shown.
    expect(page.locator("#attachments")).to_have_text("PNG image, 70\xa0bytes")
    expect(page.locator("#generation-settings")).to_contain_text("JSON (application/json)")
    expect(page.locator("#response-schema")).to_contain_text('"Eiffel Tower"')
    assert PNG_DATA not in page.content()

    # The answer arrives by polling: the structured answer, a table of its properties.
    answer = page.locator("#structured-answer")
    expect(answer).to_be_visible(timeout=30_000)
    expect(answer.locator("> table > tbody > tr > th")).to_have_text(["city", "landmarks"])
    expect(answer.locator("> table > tbody > tr").first.locator("td")).to_have_text("Paris")
    landmarks = answer.locator("table.json-table")
    expect(landmarks.locator("thead th")).to_have_text(["name", "height_m"])
    expect(landmarks.locator("tbody td")).to_have_text(["Eiffel Tower", "330"])
    expect(page.locator("#output-problem")).to_have_count(0)
    page.screenshot(path=SCREENSHOTS / "request-structured-answer.png", full_page=True)

    job.refresh_from_db()
    assert job.state == State.SUCCEEDED
    assert job.output_json == {
        "city": "Paris",
        "landmarks": [{"name": "Eiffel Tower", "height_m": 330}],
    }
    # What reached the wire carried the image and the schema.
    (body,) = _sent(simulator.url, word)
    assert PNG_DATA in json.dumps(body)
    assert "Eiffel Tower" in json.dumps(body)
