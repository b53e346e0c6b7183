"""The clinician page at `/` in a real Chromium against a real stack (Redis, worker, API under gunicorn).

Needs the `playwright` package (the `test` extra) and Debian's chromium at /usr/bin/chromium
(`scripts/ensure-chromium.sh`, run by `make test`); no browser is downloaded. Screenshots go to
var/test-artifacts/browser/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.localstack import LocalStack, local_stack
from shared.settings import PROJECT_ROOT
from tests.images import png_bytes

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (scripts/ensure-chromium.sh installs Debian's chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the playwright package is missing (pip install -e '.[test]')")

ARTIFACTS = PROJECT_ROOT / "var" / "test-artifacts" / "browser"
NOTE = ("Chest pain radiating to the left arm with ST elevation in II, III and aVF; troponin raised. "
        "Coronary angiography showed an occluded right coronary artery.")
TEXT_LABELS = ["neoplasms", "digestive system diseases", "nervous system diseases", "cardiovascular diseases",
               "general pathological conditions"]
FIRST_RESULT_MS = 120_000  # the worker may still be loading its models when the first job arrives


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("page-stack")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    opened.console_errors = errors
    yield opened
    context.close()


def _open_with_key(page: Any, stack: LocalStack) -> None:
    page.goto(f"{stack.base_url}/")
    page.get_by_label("API key", exact=True).fill(stack.key)
    page.get_by_role("button", name="Use key").click()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def _latest_job(stack: LocalStack) -> dict[str, Any]:
    with stack.client() as http:
        jobs: list[dict[str, Any]] = http.get("/v1/jobs", params={"limit": 1}).json()["jobs"]
    return jobs[0]


def test_key_is_checked_and_kept_in_session_storage_only(stack: LocalStack, page: Any) -> None:
    expect = sync_api.expect
    page.goto(f"{stack.base_url}/")
    expect(page.locator(".notice")).to_contain_text("not a diagnosis")
    page.get_by_label("API key", exact=True).fill("mq_wrong_key")
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#error")).to_contain_text("401")
    _shot(page, "01-bad-key")
    page.get_by_label("API key", exact=True).fill(stack.key)
    page.keyboard.press("Enter")  # keyboard only: Enter in the key field submits it
    expect(page.locator("#model option")).to_have_count(2)
    expect(page.locator("#error")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('medq.apiKey')") == stack.key
    assert page.evaluate("localStorage.length") == 0
    page.reload()  # the same tab keeps the key, so the models come back without typing it again
    expect(page.locator("#model option")).to_have_count(2)
    unlabelled = page.evaluate("""[...document.querySelectorAll('input, select, textarea, button')]
        .filter((el) => !(el.labels && el.labels.length) && !el.textContent.trim() && !el.getAttribute('aria-label'))
        .map((el) => el.id)""")
    assert unlabelled == []


def test_problems_and_indeterminate_results_are_shown(stack: LocalStack, page: Any) -> None:
    expect = sync_api.expect
    _open_with_key(page, stack)
    page.get_by_label("Model", exact=True).select_option("pneumonia-xray")
    page.get_by_label("Chest X-ray image").set_input_files(
        {"name": "broken.png", "mimeType": "image/png", "buffer": b"not an image at all"})
    page.get_by_role("button", name="Classify").click()
    expect(page.locator("#error")).to_contain_text("422")
    expect(page.locator("#error li")).to_contain_text("input.image_b64")
    _shot(page, "04-problem")
    # The shipped models rarely abstain on demand, so the API's answer is replaced by an indeterminate one.
    job = {"id": "00000000-0000-4000-8000-000000000001", "status": "succeeded", "model": "pneumonia-xray",
           "model_version": "1.0.0", "external_id": None, "priority": "routine", "created_at": "2026-11-25T10:00:00Z",
           "started_at": "2026-11-25T10:00:01Z", "finished_at": "2026-11-25T10:00:02Z", "queue_position": None,
           "result": {"label": "pneumonia", "scores": [{"label": "pneumonia", "probability": 0.52},
                                                       {"label": "normal", "probability": 0.48}],
                      "explanation": None, "indeterminate": True, "model": "pneumonia-xray",
                      "model_version": "1.0.0", "model_sha256": "ab" * 32},
           "error": None, "data_removed": False}
    page.route("**/v1/jobs", lambda route: route.fulfill(status=200, json=job))
    page.get_by_label("Chest X-ray image").set_input_files(
        {"name": "xray.png", "mimeType": "image/png", "buffer": png_bytes()})
    page.get_by_role("button", name="Classify").click()
    expect(page.locator("#indeterminate")).to_be_visible()
    expect(page.locator("#indeterminate")).to_contain_text("abstain band")
    expect(page.locator("#error")).to_be_hidden()
    _shot(page, "05-indeterminate")


def test_note_gets_label_probabilities_and_highlighted_words(stack: LocalStack, page: Any) -> None:
    expect = sync_api.expect
    _open_with_key(page, stack)
    page.get_by_label("Model", exact=True).select_option("disease-category")
    page.get_by_label("Clinical note").fill(NOTE)
    page.get_by_label("Explain the result", exact=False).check()
    page.get_by_role("button", name="Classify").click()
    expect(page.locator("#result-label")).to_have_text(re.compile("|".join(TEXT_LABELS)), timeout=FIRST_RESULT_MS)
    expect(page.locator("#scores .bar")).to_have_count(len(TEXT_LABELS))
    expect(page.locator("#tokens .token").first).to_be_visible()
    assert "##" not in page.locator("#tokens").inner_text()  # word-pieces are joined into words
    job = _latest_job(stack)
    assert page.locator("#result-label").inner_text() == job["result"]["label"]
    assert page.locator("#indeterminate").is_visible() == bool(job["result"]["indeterminate"])
    assert "Finished" in page.locator("#status").inner_text() or "finished" in page.locator("#status").inner_text()
    assert "ST elevation" not in page.url and "troponin" not in page.url
    _shot(page, "02-note-result")
    assert page.console_errors == []


def test_xray_gets_label_and_heatmap_overlay(stack: LocalStack, page: Any) -> None:
    expect = sync_api.expect
    _open_with_key(page, stack)
    page.get_by_label("Model", exact=True).select_option("pneumonia-xray")
    expect(page.get_by_label("Clinical note")).to_be_hidden()
    page.get_by_label("Chest X-ray image").set_input_files(
        {"name": "xray.png", "mimeType": "image/png", "buffer": png_bytes((64, 64), seed=3)})
    page.get_by_label("Explain the result", exact=False).check()
    page.get_by_role("button", name="Classify").click()
    expect(page.locator("#result-label")).to_have_text(re.compile("normal|pneumonia"), timeout=FIRST_RESULT_MS)
    expect(page.locator("#scores .bar")).to_have_count(2)
    expect(page.locator("#heatmap")).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    expect(page.locator("#xray")).to_have_attribute("src", re.compile(r"^blob:"))
    assert page.locator("#result-label").inner_text() == _latest_job(stack)["result"]["label"]
    _shot(page, "03-xray-result")
    assert page.console_errors == []
