"""The studio's Paint tab in a real headless Chromium (Playwright, Debian's /usr/bin/chromium):
open the tab, choose a pix2pixHD model, start from a procedural scene, paint a road stroke and
see the synthesis change, place a car and give it another feature cluster, save the label
map, the instance map and the image, erase the car.

The model is the tiny random pix2pixHD of tests/test_studio_paint.py. For the docs'
screenshot, point the test at a trained model and say where to save the picture:

    GANPRIOR_STUDIO_PAINT_MODELS=DIR GANPRIOR_STUDIO_PAINT_MODEL=file:NAME.safetensors \\
    GANPRIOR_STUDIO_SCREENSHOT=docs/images/studio-paint.png .venv/bin/python -m pytest \\
        tests/e2e/test_studio_paint_browser.py
"""
import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROAD, CAR = 2, 6

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(make setup installs it)")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(model folder, model id): a trained model named by the environment, else a tiny one."""
    if os.environ.get("GANPRIOR_STUDIO_PAINT_MODELS"):
        return (Path(os.environ["GANPRIOR_STUDIO_PAINT_MODELS"]),
                os.environ.get("GANPRIOR_STUDIO_PAINT_MODEL", "file:p2p.safetensors"))
    from test_studio_paint import make_paint_models
    return make_paint_models(tmp_path_factory.mktemp("paint-e2e")), "file:p2p.safetensors"


@pytest.fixture(scope="module")
def server_url(models, serve):
    from ganprior.app.server import create_app
    app = create_app(model_dir=models[0], device="cpu",
                     allowed_hosts=["127.0.0.1", "localhost"])  # as `serve`
    return serve(app)


def on_label(page, x, y):
    """Page coordinates of label-map pixel (x, y)."""
    box = page.locator("#paint-over").bounding_box()
    scale = box["width"] / page.evaluate("() => Paint.P.W")
    return box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale


def settled(page, timeout=30_000):
    """Wait until the server has answered every edit sent."""
    page.wait_for_function("() => Paint.P.seq > 0 && Paint.P.acked === Paint.P.seq",
                           timeout=timeout)


def png_of(url):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_paint_in_the_browser(server_url, browser, models, tmp_path):
    page = browser.new_page(viewport={"width": 1180, "height": 1060}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server_url)
    sync_api.expect(page.locator("#connection")).to_have_text("connected", timeout=15_000)
    page.click("#tab-paint")
    assert page.is_visible("#paint-tab") and not page.is_visible("#drag-tab")
    # pix2pixHD models are offered here, not on the drag tab
    assert models[1] in page.eval_on_selector_all("#paint-model option",
                                                  "os => os.map((o) => o.value)")
    assert models[1] not in page.eval_on_selector_all("#model option",
                                                      "os => os.map((o) => o.value)")
    page.select_option("#paint-model", models[1])
    page.fill("#paint-seed", "11")
    page.click("#paint-scene")
    page.wait_for_function("() => (document.getElementById('paint-view').src || '')"
                           ".startsWith('data:')", timeout=30_000)
    size = page.evaluate("() => Paint.P.W")
    assert page.locator("#palette button").count() == 8
    assert "road" in page.inner_text("#palette") and "thing" in page.inner_text("#palette")
    first = page.get_attribute("#paint-view", "src")
    label0 = np.array(page.evaluate("() => [...Paint.P.server.label]")).reshape(size, size)
    road_rows = np.nonzero(label0[:, size // 2] == ROAD)[0]
    assert len(road_rows) > size // 8

    # a road stroke across the strip below the road (sidewalk or grass in the scenes)
    page.click("#palette button[data-cls='2']")
    page.fill("#paint-brush", str(max(2, size // 24)))
    page.dispatch_event("#paint-brush", "input")
    y = min(size - 2, road_rows.max() + size // 12)
    assert (label0[y, size // 8:size * 7 // 8] != ROAD).any()
    page.mouse.move(*on_label(page, size // 8, y))
    page.mouse.down()
    page.mouse.move(*on_label(page, size * 7 // 8, y), steps=12)
    page.mouse.up()
    settled(page)
    assert page.evaluate(f"() => Paint.P.label[{y} * Paint.P.W + {size // 2}]") == ROAD
    assert page.evaluate(f"() => Paint.P.server.label[{y} * Paint.P.W + {size // 2}]") == ROAD
    page.wait_for_function(f"() => document.getElementById('paint-view').src !== {first!r}")
    painted = page.get_attribute("#paint-view", "src")

    # a car: drag a box; it gets a fresh id of the car class and is selected
    page.check("input[name=paint-tool][value=instance]")
    page.click("#palette button[data-cls='6']")
    before = set(page.evaluate("() => [...Paint.P.instances.keys()]"))
    top = int(road_rows.min() + (road_rows.max() - road_rows.min()) * 0.3)  # on the road
    box = (size * 2 // 5, top, size * 3 // 5, top + size // 10)
    page.mouse.move(*on_label(page, box[0], box[1]))
    page.mouse.down()
    page.mouse.move(*on_label(page, box[2], box[3]), steps=6)
    page.mouse.up()
    settled(page)
    page.wait_for_function("() => Paint.P.selected !== null")
    car = page.evaluate("() => Paint.P.selected")
    assert car // 1000 == CAR and car not in before
    assert page.evaluate(f"() => Paint.P.server.inst[{box[1] + 1} * Paint.P.W + "
                         f"{box[0] + 1}]") == car
    assert f"instance {car}: car" in page.inner_text("#paint-selected")
    # another feature cluster for it: the synthesis changes
    assert page.is_enabled("#paint-cluster")
    page.select_option("#paint-cluster", "2")
    settled(page)
    page.wait_for_function(f"() => Paint.P.instances.get({car}).cluster === 2")
    assert "cluster 2 of" in page.inner_text("#paint-selected")
    assert page.get_attribute("#paint-view", "src") != painted
    if os.environ.get("GANPRIOR_STUDIO_SCREENSHOT"):
        page.check("input[name=paint-tool][value=brush]")
        page.mouse.move(*on_label(page, size // 4, size * 3 // 4))
        page.screenshot(path=os.environ["GANPRIOR_STUDIO_SCREENSHOT"])

    # save: the files are the maps and the image the page shows
    saved = {}
    for link in ("#dl-label", "#dl-instances", "#dl-paint-image"):
        with page.expect_download() as dl:
            page.click(link)
        saved[link] = tmp_path / dl.value.suggested_filename
        dl.value.save_as(saved[link])
    label = Image.open(saved["#dl-label"])
    inst = Image.open(saved["#dl-instances"])
    assert label.mode == "L" and inst.mode.startswith("I;16")
    w = size
    assert np.array_equal(np.asarray(label).reshape(-1),
                          page.evaluate("() => [...Paint.P.server.label]"))
    assert np.array_equal(np.asarray(inst).reshape(-1),
                          page.evaluate("() => [...Paint.P.server.inst]"))
    assert np.array_equal(np.asarray(Image.open(saved["#dl-paint-image"])),
                          png_of(page.get_attribute("#paint-view", "src")))
    assert (np.asarray(inst) == car).sum() > 0 and np.asarray(label).shape == (w, w)

    # erase the car: back to the stuff beneath
    page.check("input[name=paint-tool][value=erase]")
    page.mouse.click(*on_label(page, box[0] + 1, box[1] + 1))
    settled(page)
    assert not page.evaluate(f"() => Paint.P.instances.has({car})")
    assert page.evaluate(f"() => Paint.P.server.label[{box[1] + 1} * Paint.P.W + "
                         f"{box[0] + 1}]") not in (4, 5, 6, 7)
    assert "error" not in (page.get_attribute("#paint-message", "class") or "")
    assert not errors, errors
    page.close()
