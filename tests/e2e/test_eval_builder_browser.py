"""The eval builder in a real browser: an eval of two candidates, a check and a
judge built field by field, a third candidate added with the button (nothing
typed is lost), checked, its YAML downloaded, then a table chosen and the
upload's own preview shown (jobs and cost per candidate and grader) and
confirmed. No cluster: the run is checked as created. Debian's Chromium
through Playwright; screenshots go to test-results/e2e/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs.models import Run
from jobs.runs import eval_definitions
from jobs.runs.builders import builder_spec
from tests.e2e.browsing import SCREENSHOTS, log_in

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_in_tmp"),
]
TABLE = "question,reference\nalpha?,alpha\nbeta?,gamma\ndelta?,delta\n"


def test_an_eval_built_in_the_page_is_previewed_and_created(
    live_server, browser, ada, ada_password, tmp_path
):
    base = live_server.url
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    log_in(page, base, ada_password)

    page.goto(f"{base}/runs/new/")
    page.get_by_text("An eval: several models answer the table").click()
    page.get_by_role("link", name="Or build one here").click()
    expect(page.get_by_role("heading", name="Build an eval")).to_be_visible()

    page.get_by_label("Eval name").fill("built-in-browser")
    page.get_by_label("Prompt", exact=True).fill("{{ row.question }}")
    first, second = page.locator("#candidates-0"), page.locator("#candidates-1")
    first.get_by_label("Model").select_option("gemini-2.5-flash")
    first.get_by_label("Name").fill("big")
    second.get_by_label("Model").select_option("gemini-2.5-flash-lite")
    second.get_by_label("Name").fill("small")

    check = page.locator("#checks-0")
    check.get_by_label("Grader name").fill("mentions")
    expect(check.get_by_label("Value (contains)")).to_be_hidden()  # until its check is chosen
    check.get_by_label("Check", exact=True).select_option("contains")
    expect(check.get_by_label("Expected (equals, json_path, numeric)")).to_be_hidden()
    check.get_by_label("Value (contains)").fill("{{ row.reference }}")

    judge = page.locator("#judges-0")
    judge.get_by_label("Grader name").fill("judge")
    judge.get_by_label("Judge model").select_option("gemini-2.5-pro")
    judge.get_by_label("Judge prompt").fill("Grade {{ answer }} against {{ row.reference }}")
    judge.get_by_label("Highest score").fill("5")

    # A third candidate, added by the button: everything typed is still there.
    page.get_by_role("button", name="Add a candidate").click()
    third = page.locator("#candidates-2")
    expect(third).to_be_visible()
    expect(page.locator("#candidates-0").get_by_label("Name")).to_have_value("big")
    expect(page.locator("#judges-0").get_by_label("Highest score")).to_have_value("5")
    expect(page.locator("#checks-0").get_by_label("Value (contains)")).to_have_value(
        "{{ row.reference }}"
    )
    third.get_by_label("Model").select_option("gemini-3-flash-preview")
    third.get_by_label("Name").fill("thinker")
    third.get_by_label("Thinking level").select_option("low")

    page.get_by_role("button", name="Check the definition").click()
    built = page.locator("#eval-built")
    expect(built).to_contain_text("The definition is complete: built-in-browser")
    expect(page.locator("#eval-yaml")).to_contain_text("thinking_level: low")
    page.screenshot(path=SCREENSHOTS / "eval-builder-checked.png", full_page=True)

    with page.expect_download() as download_info:
        built.get_by_role("button", name="Download eval.yaml").click()
    download = download_info.value
    assert download.suggested_filename == "eval.yaml"
    saved = tmp_path / "eval.yaml"
    download.save_as(saved)
    compiled = eval_definitions.eval_read(saved.read_text(), spec=builder_spec())
    assert [c["label"] for c in compiled.evaluation["candidates"]] == ["big", "small", "thinker"]
    assert compiled.evaluation["graders"][1]["scale"] == [1, 5]

    # The table, and on to the upload's own preview.
    built.locator("#id_file").set_input_files(
        files=[{"name": "questions.csv", "mimeType": "text/csv", "buffer": TABLE.encode()}]
    )
    built.get_by_role("button", name="Upload the table and preview").click()
    expect(page.locator("#eval-estimate")).to_contain_text("The eval: built-in-browser")
    expect(page.locator("#candidate-thinker")).to_contain_text("gemini-3-flash-preview")
    expect(page.locator("#candidate-big td").nth(2)).to_have_text("3")  # one answer per row
    expect(page.locator("#grader-mentions")).to_contain_text("free: no model is called")
    expect(page.locator("#grader-judge td").nth(2)).to_have_text("9")  # per row per candidate
    expect(page.locator("#eval-jobs")).to_have_text("18")
    page.screenshot(path=SCREENSHOTS / "eval-builder-preview.png", full_page=True)
    assert not Run.objects.exists()

    page.get_by_role("button", name="Create the eval: 3 rows, 3 candidates, 2 graders").click()
    expect(page.get_by_text("Eval “built-in-browser” created")).to_be_visible()
    run = Run.objects.get()
    assert run.owner == ada and run.name == "built-in-browser"
    assert [c["key"] for c in run.evaluation["candidates"]] == ["big", "small", "thinker"]
    assert run.jobs.count() == 18  # exactly what was previewed
    context.close()
