"""End to end: the real server on loopback, the page driven in headless Chromium (Playwright)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from PIL import Image

from dermx.serve import create_app
from predict.samples import photo

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.browser


def _chromium() -> str:
    path = os.environ.get("DERMX_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("Chromium not found (apt-get install chromium, or set DERMX_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def server(checkpoint: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(checkpoint), host="127.0.0.1", port=port, log_level="warning")
    service = uvicorn.Server(config)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not service.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    service.should_exit = True
    thread.join(10)


def test_upload_see_result_toggle_overlay(server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed (pip install playwright)")
    executable = _chromium()
    image = tmp_path / "lesion.png"
    photo(160, 120).save(image)
    shot = tmp_path / "page.png"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(server + "/")
            page.locator("#file").set_input_files(str(image))
            page.locator("#result").wait_for(state="visible", timeout=30_000)
            assert page.locator("#diagnoses li").count() == 6
            assert page.locator("#characteristics li").count() == 16
            assert page.locator("#overlay").is_hidden()
            first = page.locator("#overlays button").first
            first.click()
            assert first.get_attribute("aria-checked") == "true"
            page.wait_for_function("document.getElementById('overlay').complete && "
                                   "document.getElementById('overlay').naturalWidth > 0")
            assert page.locator("#overlay").is_visible()
            # the 160x120 photo was padded into the square input: its area is outlined on both pictures
            assert page.locator(".input-area:visible").count() == 2 and page.locator("#padding-note").is_visible()
            box = page.locator("#stage .input-area").bounding_box()
            stage = page.locator("#stage").bounding_box()
            assert box and stage and abs(box["width"] - stage["width"]) < 2 and box["height"] < 0.8 * stage["height"]
            page.locator("#opacity").fill("80")
            assert page.locator("#overlay").evaluate("e => e.style.opacity") == "0.8"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    with Image.open(shot) as picture:
        assert picture.format == "PNG" and picture.width > 0 and picture.height > 0
    keep = os.environ.get("DERMX_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


@pytest.mark.parametrize(("path", "rendered"), [("/docs", ".swagger-ui .info"), ("/", "label.button")])
def test_pages_render_without_any_external_request(server: str, path: str, rendered: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed (pip install playwright)")
    executable = _chromium()
    requested: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.route(lambda url: not url.startswith(server), lambda route: route.abort())  # nothing leaves
            page.goto(server + path)
            page.locator(rendered).first.wait_for(state="visible", timeout=30_000)
            if path == "/docs":
                assert "/v1/predict" in page.content()
        finally:
            browser.close()
    assert requested and [url for url in requested if not url.startswith((server, "data:", "blob:"))] == []
