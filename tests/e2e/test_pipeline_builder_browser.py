"""The pipeline builder in a real browser: a pipeline whose first step answers
in JSON and whose second fans out over that answer's list, built step by step;
a third step added with the button (nothing typed is lost), a mistake shown at
its step and corrected, checked, its YAML downloaded, then a table chosen and
the upload's own preview shown (each step's jobs and estimate) and confirmed.
No cluster: the run is checked as created. Debian's Chromium through
Playwright; screenshots go to test-results/e2e/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs.engine import pipelines
from jobs.models import Run, State
from jobs.runs.builders import builder_spec
from tests.e2e.browsing import SCREENSHOTS, log_in

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_in_tmp"),
]
TABLE = "id,text\nr1,The sky is blue.\nr2,Water is wet.\nr3,Fire is cold.\n"
CLAIMS = (
    '{"type": "object", "properties": {"claims": {"type": "array", "items": {"type": "string"}}}}'
)


def test_a_pipeline_built_in_the_page_is_previewed_and_created(
    live_server, browser, ada, ada_password, tmp_path
):
    base = live_server.url
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    log_in(page, base, ada_password)

    page.goto(f"{base}/runs/new/")
    page.get_by_text("A pipeline: steps that use the answers before them").click()
    page.locator("#pipeline-builder-link").click()
    expect(page.get_by_role("heading", name="Build a pipeline")).to_be_visible()

    page.get_by_label("Pipeline name").fill("claims-checked")
    page.get_by_label("Standard — the full price").check()
    first, second = page.locator("#steps-0"), page.locator("#steps-1")
    first.get_by_label("Step name").fill("extract")
    first.get_by_label("Prompt", exact=True).fill("List the claims in: {{ row.text }}")
    first.get_by_label("Response schema (JSON Schema)").fill(CLAIMS)
    second.get_by_label("Step name").fill("check")
    second.get_by_label("Model").select_option("gemini-2.5-pro")
    second.get_by_label("Tier").select_option("flex")
    second.get_by_label("For each").fill("steps.extract.json.facts")  # a mistake
    second.get_by_label("Prompt", exact=True).fill("Is this true? {{ item }}")

    # A third step, added by the button: everything typed is still there.
    page.get_by_role("button", name="Add a step").click()
    third = page.locator("#steps-2")
    expect(third).to_be_visible()
    expect(page.locator("#steps-0").get_by_label("Response schema (JSON Schema)")).to_have_value(
        CLAIMS
    )
    expect(page.locator("#steps-1").get_by_label("Model")).to_have_value("gemini-2.5-pro")
    expect(page.get_by_label("Standard — the full price")).to_be_checked()
    third.get_by_label("Step name").fill("verdict")
    third.get_by_label("Continue the conversation of").fill("extract")
    third.get_by_label("Prompt", exact=True).fill("Checked: {{ steps.check.outputs }}. Which?")

    # The mistake is shown at its step, with what was typed.
    page.get_by_role("button", name="Check the definition").click()
    expect(page.locator("#builder-problems")).to_contain_text("1 problem")
    check = page.locator("#steps-1")
    expect(check.locator(".field-error").first).to_contain_text(
        "response_schema has no property facts at steps.extract.json"
    )
    expect(check).to_have_class("builder-row row-problem")
    page.screenshot(path=SCREENSHOTS / "pipeline-builder-problem.png", full_page=True)
    check.get_by_label("For each").fill("steps.extract.json.claims")

    page.get_by_role("button", name="Check the definition").click()
    built = page.locator("#pipeline-built")
    expect(built).to_contain_text("The definition is complete: claims-checked")
    expect(page.locator("#built-check")).to_contain_text(
        "once per item of steps.extract.json.claims"
    )
    expect(page.locator("#built-verdict")).to_contain_text("continuing extract")
    expect(page.locator("#pipeline-yaml")).to_contain_text("for_each: steps.extract.json.claims")
    page.screenshot(path=SCREENSHOTS / "pipeline-builder-checked.png", full_page=True)

    with page.expect_download() as download_info:
        built.get_by_role("button", name="Download pipeline.yaml").click()
    download = download_info.value
    assert download.suggested_filename == "pipeline.yaml"
    saved = tmp_path / "pipeline.yaml"
    download.save_as(saved)
    pipeline = pipelines.definition_check(
        pipelines.definition_load(saved.read_text()), defaults=builder_spec()
    )
    assert [(s.name, s.tier, s.parents) for s in pipeline.steps] == [
        ("extract", "standard", ()),
        ("check", "flex", ("extract",)),
        ("verdict", "standard", ("extract", "check")),
    ]

    # The table, and on to the upload's own preview.
    built.locator("#id_file").set_input_files(
        files=[{"name": "claims.csv", "mimeType": "text/csv", "buffer": TABLE.encode()}]
    )
    built.get_by_role("button", name="Upload the table and preview").click()
    expect(page.locator("#row-count")).to_have_text("3")
    expect(page.locator("#step-count")).to_have_text("3")
    expect(page.locator("#estimate-extract")).to_contain_text("standard")
    expect(page.locator("#estimate-check")).to_contain_text("gemini-2.5-pro")
    page.screenshot(path=SCREENSHOTS / "pipeline-builder-preview.png", full_page=True)
    assert not Run.objects.exists()

    page.get_by_role("button", name="Create the pipeline: 3 rows, 3 steps").click()
    expect(page.get_by_text("Pipeline “claims-checked” created")).to_be_visible()
    run = Run.objects.get()
    assert run.owner == ada and run.name == "claims-checked"
    assert (
        sorted(run.jobs.filter(step="extract").values_list("state", flat=True))
        == [State.QUEUED] * 3
    )
    context.close()
