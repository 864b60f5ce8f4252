"""End to end: the real server on loopback, the page driven in headless Chromium (Playwright)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


@contextmanager
def _serving(service: Any) -> Iterator[str]:
    """The service on a free loopback port, for the duration of the block; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(service, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(checkpoint: Path) -> Iterator[str]:
    with _serving(create_app(checkpoint)) as url:
        yield url


@contextmanager
def _page_after_upload(url: str, image: Path, width: int, height: int) -> Iterator[Any]:
    """Headless Chromium at ``width`` × ``height`` on the page at ``url``, once ``image`` was uploaded
    and its result shown; skips without Playwright or Chromium."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed (pip install playwright)")
    executable = _chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url + "/")
            page.locator("#file").set_input_files(str(image))
            page.locator("#result").wait_for(state="visible", timeout=30_000)
            yield page
        finally:
            browser.close()


def test_upload_see_result_toggle_overlay(server: str, tmp_path: Path) -> None:
    image = tmp_path / "lesion.png"
    photo(160, 120).save(image)
    shot = tmp_path / "page.png"
    with _page_after_upload(server, image, 1100, 800) as page:
        assert page.locator("#diagnoses li").count() == 6
        assert page.locator("#characteristics li").count() == 16
        first, second = page.locator("#overlays button").nth(0), page.locator("#overlays button").nth(1)
        assert first.get_attribute("aria-checked") == "true" and first.inner_text().startswith("Dx:")
        second.click()
        assert second.get_attribute("aria-checked") == "true" and first.get_attribute("aria-checked") == "false"
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


#: (image width, height, resolution policy of the service): a landscape photo padded into the square input,
#: and portrait ones shown at their own shape (crop), up to one four times as tall as wide.
SHAPES = [(160, 120, "pad"), (120, 180, "crop"), (100, 400, "crop")]


@pytest.mark.parametrize(("width", "height", "resolution"), SHAPES, ids=lambda v: str(v))
def test_the_map_is_beside_the_image_after_an_upload_without_scrolling(checkpoint: Path, tmp_path: Path, width: int,
                                                                      height: int, resolution: str) -> None:
    """Issue 25: on a 1280x800 window, the upload's map shows beside the image at once, with the map's
    choices and colour scale, and nothing needs scrolling. Old code: no map until a toggle below 22 result
    rows (off screen) was clicked."""
    image = tmp_path / "lesion.png"
    photo(width, height).save(image)
    shot = tmp_path / f"page_{width}x{height}_{resolution}.png"
    service = create_app(checkpoint, resolution=resolution)  # type: ignore[arg-type]
    with _serving(service) as url, _page_after_upload(url, image, 1280, 800) as page:
        page.wait_for_function("['overlay', 'photo', 'original'].every(id => document.getElementById(id).complete "
                               "&& document.getElementById(id).naturalWidth > 0)")
        assert page.locator("#overlay").is_visible()
        assert page.locator("#overlay-title").inner_text().startswith("diagnosis:")
        boxes = {name: page.locator(name).bounding_box() for name in
                 ("#original", "#stage", "#overlay", "#overlays", "#colorbar")}
        assert all(boxes.values()), boxes
        for name, box in boxes.items():  # everything on screen as the page opens
            assert box["y"] >= 0 and box["y"] + box["height"] <= 800 and box["x"] + box["width"] <= 1280, name
        original, stage, overlay = boxes["#original"], boxes["#stage"], boxes["#overlay"]
        assert abs(original["y"] - stage["y"]) < 2 and stage["x"] >= original["x"] + original["width"]  # beside
        assert overlay == stage  # the map covers the picture exactly
        picture = width / height if resolution == "crop" else 1.0
        assert stage["width"] / stage["height"] == pytest.approx(picture, rel=0.03)
        assert page.evaluate("document.scrollingElement.scrollTop") == 0
        page.screenshot(path=str(shot))
    keep = os.environ.get("DERMX_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)


def test_a_calibrated_model_takes_the_skin_tone_and_risk_from_the_page_and_abstains(tmp_path: Path) -> None:
    """With a calibrated model the page offers its calibration groups and a target risk; at risk 0 on dark
    skin the answer is an abstention naming the diagnosis set, never a bare top-1. An uncalibrated model
    shows no such controls and says so under the diagnoses."""
    from predict.samples import calibrated_checkpoint, tiny_checkpoint

    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed (pip install playwright)")
    image = tmp_path / "lesion.png"
    photo(160, 120).save(image)
    calibrated = calibrated_checkpoint(tmp_path / "calibrated")
    with _serving(create_app(calibrated)) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url + "/")
            page.locator("#trust").wait_for(state="visible", timeout=30_000)
            assert page.locator("#group-label").inner_text() == "skin tone"
            assert page.locator("#skin-tone option").all_inner_texts() == ["not given", "dark", "light"]
            page.locator("#skin-tone").select_option("dark")
            page.locator("#abstain-risk").fill("0")
            page.locator("#file").set_input_files(str(image))
            page.locator("#abstention").wait_for(state="visible", timeout=30_000)
            assert page.locator("#abstention").inner_text().startswith("No single diagnosis: uncertain: ")
            assert "Diagnosis set (90% coverage)" in page.locator("#diagnosis-set").inner_text()
            assert "dark" in page.locator("#diagnosis-set").inner_text()
            assert page.locator("#overlay-title").inner_text().startswith("class ")  # a map, not a diagnosis
            assert "(no single diagnosis)" in page.locator("#overlay-title").inner_text()
            assert page.locator("#status").inner_text().endswith(page.locator("#abstention").inner_text()[
                len("No single diagnosis: "):])
            page.screenshot(path=str(tmp_path / "abstention.png"), full_page=True)
        finally:
            browser.close()
    keep = os.environ.get("DERMX_SCREENSHOT_TRUST")
    if keep:
        shutil.copy(tmp_path / "abstention.png", keep)
    plain = tiny_checkpoint(tmp_path / "plain")
    with _serving(create_app(plain)) as url, _page_after_upload(url, image, 1100, 800) as page:
        assert page.locator("#trust").is_hidden() and page.locator("#abstention").is_hidden()
        assert page.locator("#diagnosis-set").inner_text().startswith("Uncalibrated probabilities: ")


def test_setting_a_characteristic_on_the_page_changes_the_diagnosis_and_its_map(tmp_path: Path) -> None:
    """Issue 28: each characteristic has three states (model / present / absent); setting one recomputes the
    diagnosis at once from the kept prediction (no upload) and shows the map of the new top diagnosis; back
    to "model", the model's own answer returns."""
    from dermx.predict import Predictor
    from predict.test_intervention import linear_checkpoint

    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed (pip install playwright)")
    expect = sync_api.expect
    checkpoint = linear_checkpoint(tmp_path / "linear")
    image = tmp_path / "lesion.png"
    photo(160, 120).save(image)
    predictor = Predictor(checkpoint)
    (own,) = predictor.run([predictor.prepare(image)], keep="pooled")
    assert own.features is not None
    name, state, answer = next(
        (name, state, changed) for name in predictor.model.config.characteristics for state in ("present", "absent")
        if (changed := predictor.intervene(own.features, {name: state == "present"})).diagnosis != own.diagnosis)
    with _serving(create_app(checkpoint)) as url, _page_after_upload(url, image, 1280, 800) as page:
        first = page.locator("#diagnoses li").first
        assert first.locator(".name").inner_text() == own.diagnosis
        assert page.locator("#characteristics .setting").count() == 16
        assert page.locator("#intervention-note").is_hidden()
        control = page.locator(f'#characteristics [aria-label="set {name}"]')
        assert control.locator('[aria-checked="true"]').inner_text() == "model"
        control.locator(f'button[data-state="{state}"]').click()
        expect(first.locator(".name")).to_have_text(answer.diagnosis, timeout=30_000)
        shown = float(first.locator(".value").inner_text().split(" ")[0])
        assert shown == pytest.approx(answer.diagnoses[0][1], abs=1e-3)
        assert "(+" in first.locator(".change").inner_text()  # up from the model's own answer
        assert page.locator(f'#characteristics [aria-label="set {name}"] [aria-checked="true"]').inner_text() == state
        assert page.locator("#intervention-note").inner_text().startswith(f"With {name} {state};")
        assert page.locator("#overlay-title").inner_text().startswith(f"diagnosis: {answer.diagnosis} · p = ")
        assert page.locator("#overlay").is_visible() and page.locator("#overlays button").first.inner_text() == (
            f"Dx: {answer.diagnosis}")
        kept = [f"Char: {c.name}" for c in own.characteristics if c.present and c.name != name]
        assert page.locator("#overlays button").all_inner_texts()[1:] == kept  # the prediction's, not a set one's
        page.locator(f'#characteristics [aria-label="set {name}"] button[data-state="model"]').click()
        expect(first.locator(".name")).to_have_text(own.diagnosis, timeout=30_000)
        assert page.locator("#intervention-note").is_hidden() and page.locator("#diagnoses .change").count() == 0
        assert page.locator("#status").inner_text() == f"lesion.png: {own.diagnosis}"
