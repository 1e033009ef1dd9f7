"""The studio in a real headless Chromium (Playwright, Debian's /usr/bin/chromium): open the
page, generate an image of the embedded StyleGAN2 model, paint a mask, place a handle and its
target by clicking, Start, watch the image change and the handle move, Stop, download.

Set GANPRIOR_STUDIO_SCREENSHOT=docs/images/studio.png to save the screenshot the docs show.
"""
import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.filterwarnings("ignore:--loss auto")  # said once when VGG16 is missing
MODEL = "zoo:stylegan2-digiface64"
HANDLE, TARGET = (26, 30), (42, 30)   # image pixels of the 64 px image

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(make setup installs it)")


@pytest.fixture(scope="module")
def server_url(serve):
    from ganprior.app.server import create_app
    from ganprior.checkpoints.zoo import zoo_entries
    if zoo_entries()[MODEL[4:]].availability() != "ok":
        pytest.skip(f"{MODEL} is not installed")
    app = create_app(device="cpu", allowed_hosts=["127.0.0.1", "localhost"])  # as `serve`
    return serve(app)


def on_canvas(page, x, y):
    """Page coordinates of image pixel (x, y) on the 512 px canvas."""
    box = page.locator("#points-layer").bounding_box()
    scale = box["width"] / 64
    return box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale


def test_drag_in_the_browser(server_url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 900, "height": 980}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server_url)
    sync_api.expect(page.locator("#connection")).to_have_text("connected", timeout=15_000)

    page.select_option("#model", MODEL)
    page.fill("#seed", "3")
    page.click("#generate")
    page.wait_for_function("() => document.getElementById('view').src.startsWith('data:')",
                           timeout=30_000)
    start_image = page.get_attribute("#view", "src")

    # the mask brush: paint the flexible area around the handle and its target
    page.check("input[name=tool][value=mask]")
    page.fill("#brush", "14")
    page.dispatch_event("#brush", "input")
    page.mouse.move(*on_canvas(page, 24, 30))
    page.mouse.down()
    page.mouse.move(*on_canvas(page, 44, 30), steps=8)
    page.mouse.up()
    assert page.evaluate("() => S.hasMask && S.mask[30 * 64 + 34] === 1 && S.mask[130] === 0")

    # two clicks: a handle, then its target (clicks map back to image pixels)
    page.check("input[name=tool][value=points]")
    page.mouse.click(*on_canvas(page, *HANDLE))
    page.mouse.click(*on_canvas(page, *TARGET))
    assert page.evaluate("() => S.pairs") == [{"h": list(HANDLE), "t": list(TARGET)}]

    page.fill("#lr", "0.03")
    page.fill("#lambda", "2")  # at 64 px the official 20 pins the handle in a mask this small
    page.fill("#max-steps", "2000")
    page.click("#start")
    # streamed steps: the handle moves towards its target and the image changes
    page.wait_for_function(f"() => S.pairs[0].h[0] >= {HANDLE[0] + 4}", timeout=40_000)
    assert page.get_attribute("#view", "src") != start_image
    assert page.locator("#readout").inner_text().startswith("step ")
    assert page.is_disabled("#generate") and page.is_enabled("#stop")
    if os.environ.get("GANPRIOR_STUDIO_SCREENSHOT"):
        page.screenshot(path=os.environ["GANPRIOR_STUDIO_SCREENSHOT"])
    page.click("#stop")
    sync_api.expect(page.locator("#message")).to_have_text("stopped", timeout=15_000)
    assert page.is_enabled("#start") and page.is_disabled("#stop")
    moved = page.evaluate("() => S.pairs[0].h")
    assert moved[0] > HANDLE[0]

    # downloads: the PNG is the image shown, the points are where the page shows them
    with page.expect_download() as dl:
        page.click("#dl-image")
    png = tmp_path / "drag.png"
    dl.value.save_as(png)
    shown = page.get_attribute("#view", "src")
    assert np.array_equal(np.asarray(Image.open(png)),
                          np.asarray(Image.open(io.BytesIO(base64.b64decode(shown.split(",")[1])))))
    assert Image.open(png).size == (64, 64)
    with page.expect_download() as dl:
        page.click("#dl-points")
    points = json.loads(Path(dl.value.path()).read_text())
    assert points["handles"] == [moved] and points["targets"] == [list(map(float, TARGET))]
    with page.expect_download() as dl:
        page.click("#dl-latent")
    from safetensors.torch import load_file
    assert load_file(dl.value.path())["ws"].shape[0] == 1

    # undo goes back to the generated image with the points as placed
    page.click("#undo")
    page.wait_for_function(f"() => S.pairs.length === 1 && S.pairs[0].h[0] === {HANDLE[0]}")
    assert page.get_attribute("#view", "src") == start_image
    assert not errors, errors
    page.close()


def test_photo_upload_and_inversion_in_the_browser(server_url, browser, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (80, 96, 3), np.uint8)).save(photo)
    page = browser.new_page(viewport={"width": 900, "height": 980})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server_url)
    sync_api.expect(page.locator("#connection")).to_have_text("connected", timeout=15_000)
    page.select_option("#model", MODEL)
    page.set_input_files("#photo", str(photo))
    page.fill("#invert-steps", "12")
    page.fill("#tune-steps", "3")  # then PTI: the tuning message, then the result
    page.click("#invert")
    sync_api.expect(page.locator("#invert-text")).to_contain_text("inverted (",
                                                                   timeout=40_000)
    assert page.evaluate("() => document.getElementById('invert-progress').value") == 1
    assert "tuned (PTI, 3 steps)" in page.inner_text("#invert-text")
    assert page.get_attribute("#photo-target", "src").startswith("data:image/png")
    assert page.get_attribute("#view", "src").startswith("data:image/png")
    assert "photo inverted into" in page.inner_text("#readout")
    assert page.is_enabled("#reset") and not errors, errors
    page.close()
