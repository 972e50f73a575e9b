"""The demo page and the API documentation in a real browser (Debian's chromium, driven
by Playwright) against `make run`'s stack, through the edge."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import playwright.sync_api as playwright_api
import pytest
from reviews import NEGATIVE

from harness.processes import start_gateway
from serving.gateway.access.api_keys import hash_line, new_key

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PHONE = {"width": 375, "height": 740}


@pytest.fixture(scope="module")
def browser() -> Iterator:
    assert os.path.exists(CHROMIUM), "chromium is missing: `make test` installs Debian's package"
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, local_stack) -> Iterator:
    context = browser.new_context(base_url=local_stack.edge)
    page = context.new_page()
    page.problems = []  # console errors and failed requests, checked by each test
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("requestfailed", lambda request: page.problems.append(f"{request.url}: {request.failure}"))
    yield page
    context.close()


def test_the_demo_page_scores_a_review_and_colours_its_words(page, tmp_path):
    page.goto("/")
    assert page.title() == "Sentiment service"
    page.get_by_label("Model").select_option("lstm")
    page.get_by_label("Review").fill(NEGATIVE)
    page.get_by_role("button", name="Score the review").click()
    verdict = page.locator("#verdict")
    playwright_api.expect(verdict).to_contain_text("% positive")
    assert verdict.inner_text().startswith("Negative")
    words = page.locator("#coloured .word")
    assert words.count() == len(NEGATIVE.replace(",", " ").replace(".", " ").split())
    effects = [float(value) for value in words.evaluate_all("spans => spans.map(s => s.dataset.effect)")]
    assert min(effects) < 0, effects
    strongest = page.locator("#top-words tbody tr").first.inner_text()
    assert "points" in strongest
    page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    assert page.problems == []


def test_the_demo_page_works_by_keyboard_at_phone_width(page, tmp_path):
    page.set_viewport_size(PHONE)
    page.goto("/")
    page.keyboard.press("Tab")  # the first control: the link in the introduction
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "review"
    page.keyboard.type("A wonderful film, brilliant acting.")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "model"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    playwright_api.expect(page.locator("#verdict")).to_contain_text("% positive")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.get_by_role("button", name="Score the review").is_visible()
    page.screenshot(path=str(tmp_path / "demo-phone.png"), full_page=True)
    assert page.problems == []


def test_the_demo_page_shows_the_api_error(page):
    page.goto("/")
    page.get_by_label("Review").fill("   ")
    page.get_by_role("button", name="Score the review").click()
    playwright_api.expect(page.get_by_role("alert")).to_contain_text("empty or whitespace only")
    assert page.locator("#result").is_hidden()


def test_the_api_docs_list_the_operations_and_try_it_out_succeeds(page, tmp_path):
    page.goto("/docs")
    operations = page.locator(".opblock-summary-path")
    playwright_api.expect(operations.first).to_be_visible()
    assert {"/v1/sentiment", "/v1/models", "/healthz", "/readyz", "/metrics"} <= set(operations.all_inner_texts())
    predict = page.locator("#operations-default-predict")
    predict.locator(".opblock-summary").click()
    predict.get_by_role("button", name="Try it out").click()
    predict.get_by_role("button", name="Execute").click()
    status = predict.locator(".live-responses-table tbody .response-col_status")
    playwright_api.expect(status).to_have_text("200")
    assert "positive_probability" in predict.locator(".live-responses-table .microlight").first.inner_text()
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
    assert page.problems == []


def test_with_api_keys_the_demo_page_sends_the_key_it_is_given(browser, model_server, models_dir, tmp_path):
    key = new_key()
    key_file = tmp_path / "api-keys"
    key_file.write_text(hash_line("demo", key) + "\n")
    gateway = start_gateway(model_server.address, models_dir, tmp_path, GATEWAY_API_KEYS_FILE=str(key_file))
    context = browser.new_context(base_url=gateway.url)
    try:
        page = context.new_page()
        page.goto("/")
        page.get_by_label("Review").fill("A wonderful film with a clever script.")
        page.get_by_role("button", name="Score the review").click()
        playwright_api.expect(page.get_by_role("alert")).to_contain_text("an API key is required")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Score the review").click()
        playwright_api.expect(page.locator("#verdict")).to_contain_text("positive")
        assert page.get_by_role("alert").is_hidden()
    finally:
        context.close()
        gateway.process.stop()
