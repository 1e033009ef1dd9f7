"""The studio's Paint tab (app/paint.py over synthesis/editing.py) through FastAPI's test
client: a canvas from a procedural scene, brush strokes, placing and erasing instances, each
instance's feature cluster, refused input, saving and loading the maps, expiry. The model is
a tiny pix2pixHD (random weights) saved into a temporary model folder with the trainer's
checkpoint format, its clusters made by `encode_features` over a few procedural scenes."""
import base64
import io
import itertools
import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli, small_stylegan2

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from ganprior.app.server import create_app  # noqa: E402
from ganprior.checkpoints import save_native  # noqa: E402
from ganprior.data import scenes  # noqa: E402
from ganprior.synthesis import editing  # noqa: E402

SIZE = 64
MODEL = "file:p2p.safetensors"
ROAD, CAR, SKY, TREE = (scenes.CLASS[c] for c in ("road", "car", "sky", "tree"))


def make_paint_models(root, size=SIZE, seed=0):
    """A tiny pix2pixHD at root/p2p.safetensors (G, D and E with the provenance the trainer
    writes) with its feature clusters, and a StyleGAN2 at root/style.safetensors."""
    from ganprior.nets.pix2pixhd import (FeatureEncoder, GlobalGenerator,
                                         MultiscaleDiscriminator, discriminator_input_nc,
                                         generator_input_nc)
    from ganprior.synthesis import encode_features, load_pix2pixhd
    torch.manual_seed(seed)
    nc = scenes.LABEL_NC
    G = GlobalGenerator(generator_input_nc(nc, True, 3), 3, ngf=4, n_downsampling=2, n_blocks=1)
    D = MultiscaleDiscriminator(discriminator_input_nc(nc, True), ndf=4, n_layers=1, num_D=1)
    E = FeatureEncoder(3, 3, ngf=4, n_downsampling=2)
    described = scenes.describe()
    prov = {"summary": "a tiny random pix2pixHD for the studio's tests",
            "pix2pixhd": {"label_nc": nc, "instance": True, "feat_num": 3,
                          "classes": described["classes"], "palette": described["palette"],
                          "things": described["things"], "size_multiple": 4,
                          "resolution": [size, size]}, "training": {}}
    save_native(root / "p2p.safetensors", G, D, provenance=prov, more={"E": E})
    data = root.parent / f"{root.name}-scenes"
    scenes.write_scenes(data, n=4, size=size, seed=seed, progress=False)
    encode_features(load_pix2pixhd(root / "p2p.safetensors"), data, n_clusters=3,
                    min_area=0.0, progress=False)
    save_native(root / "style.safetensors", small_stylegan2(res=32))
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_paint_models(tmp_path_factory.mktemp("paint-models"))


@pytest.fixture(scope="module")
def client(model_dir):
    with TestClient(create_app(model_dir=model_dir, device="cpu")) as c:
        yield c


def maps(state):
    """(label, inst) [H, W] int64 from a canvas reply."""
    h, w = state.get("height", SIZE), state.get("width", SIZE)
    out = []
    for key in ("label", "inst"):
        raw = np.frombuffer(base64.b64decode(state[key]), "<u2")
        out.append(raw.reshape(h, w).astype(np.int64))
    return out


def picture(url):
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def new_canvas(client, seed=3, **body):
    sid = client.post("/api/sessions").json()["session"]
    r = client.post(f"/api/sessions/{sid}/paint", json={"model": MODEL, "seed": seed, **body})
    assert r.status_code == 200, r.text
    return sid, r.json()


SEQ = itertools.count(1)  # edits are numbered increasingly, as the page does


def edit(ws, *edits):
    """Send edits, return every message up to the reply that acknowledges the last one."""
    for e in edits:
        last = next(SEQ)
        ws.send_json({"type": "paint", "seq": last, **e})
    out = []
    while True:
        out.append(ws.receive_json())
        if out[-1]["type"] == "painted" and out[-1]["seq"] == last:
            return out


def png(array, mode=None):
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_models_say_which_tab_they_are_for(client):
    models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    assert models[MODEL]["kind"] == "paint" and models[MODEL]["arch"] == "pix2pixhd-global"
    assert models[MODEL]["resolution"] == SIZE
    assert models["file:style.safetensors"]["kind"] == "drag"
    assert models["zoo:stylegan2-digiface64"]["kind"] == "drag"
    assert not any(i.endswith(".clusters.safetensors") for i in models)  # part of its model


def test_a_canvas_starts_from_the_seeds_procedural_scene(client):
    sid, state = new_canvas(client, seed=3)
    assert (state["width"], state["height"], state["label_nc"]) == (SIZE, SIZE, 8)
    assert state["classes"]["names"] == list(scenes.CLASSES)
    assert state["classes"]["things"] == [4, 5, 6, 7]
    assert state["classes"]["colours"][ROAD] == list(scenes.PALETTE["road"])
    label, inst = maps(state)
    sc = scenes.scene(3, 0, SIZE)
    assert np.array_equal(label, sc.label) and np.array_equal(inst, sc.inst)
    assert picture(state["image"]).shape == (SIZE, SIZE, 3)
    cars = [e for e in state["instances"] if e["class"] == CAR]
    assert cars and all(e["thing"] and e["cluster"] == 0 and e["choice"] == "default"
                        for e in cars)
    assert state["features"] and state["has_clusters"] and state["origin"] == {
        "kind": "scene", "seed": 3}
    _, other = new_canvas(client, seed=4)
    assert not np.array_equal(maps(other)[0], label)
    _, blank = new_canvas(client, start="blank", fill=ROAD)
    assert (maps(blank)[0] == ROAD).all() and (maps(blank)[1] == ROAD).all()


def test_brush_strokes_paint_the_label_map(client):
    sid, state = new_canvas(client)
    label0, inst0 = maps(state)
    stroke = [[5, 40], [30, 44]]
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        reply = edit(ws, {"op": "brush", "class": ROAD, "radius": 3, "points": stroke,
                          "stroke": 1})[-1]
        label, inst = maps(reply)
        painted = editing.stroke_mask((SIZE, SIZE), stroke, 3)
        assert painted.sum() > 100
        assert (label[painted] == ROAD).all() and (inst[painted] == ROAD).all()
        assert np.array_equal(label[~painted], label0[~painted])
        assert not np.array_equal(picture(reply["image"]), picture(state["image"]))
        # a thing class: one new instance per stroke, extended by the stroke's next segment
        reply = edit(ws, {"op": "brush", "class": TREE, "radius": 2, "points": [[50, 10]],
                          "stroke": 2},
                     {"op": "brush", "class": TREE, "radius": 2, "points": [[50, 20]],
                      "stroke": 2})[-1]
        label, inst = maps(reply)
        new = set(np.unique(inst).tolist()) - set(np.unique(inst0).tolist())
        assert len(new) == 1 and new.pop() == inst[10, 50] == inst[20, 50]
        assert inst[10, 50] // 1000 == TREE and label[20, 50] == TREE


def test_placing_an_instance_allocates_a_fresh_id_and_erasing_restores_the_stuff(client):
    sid, state = new_canvas(client, start="blank", fill=ROAD)
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        first = maps(edit(ws, {"op": "instance", "class": CAR, "box": [4, 30, 20, 40]})[-1])
        assert first[1][35, 10] == CAR * 1000 and first[0][35, 10] == CAR
        assert (first[1] == CAR * 1000).sum() == 17 * 11  # corners included
        reply = edit(ws, {"op": "instance", "class": CAR, "box": [40, 30, 50, 36],
                          "shape": "ellipse"})[-1]
        label, inst = maps(reply)
        assert inst[33, 45] == CAR * 1000 + 1  # the next free k of the class
        assert {e["id"] for e in reply["instances"] if e["thing"]} == {6000, 6001}
        # erase the first car: back to the road it stood on; the second stays
        label, inst = maps(edit(ws, {"op": "erase", "points": [[10, 35]]})[-1])
        assert (label[30:41, 4:21] == ROAD).all() and (inst[30:41, 4:21] == ROAD).all()
        assert inst[33, 45] == 6001
        # its id is free again: the next car takes it
        reply = edit(ws, {"op": "instance", "class": CAR, "box": [4, 4, 8, 8]})[-1]
        assert maps(reply)[1][6, 6] == 6000


def test_erasing_a_scenes_car_gives_back_the_stuff_around_it(client):
    sid, state = new_canvas(client, seed=3)
    label0, inst0 = maps(state)
    car = next(e["id"] for e in state["instances"] if e["class"] == CAR)
    ys, xs = np.nonzero(inst0 == car)
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        label, inst = maps(edit(ws, {"op": "erase", "points": [[int(xs[0]), int(ys[0])]]})[-1])
    gone = inst0 == car
    assert not (inst == car).any()
    assert not np.isin(label[gone], [4, 5, 6, 7]).any()  # stuff only where the car was
    assert np.array_equal(label[gone], editing.fill_stuff(label0, {4, 5, 6, 7})[gone])
    assert np.array_equal(inst[gone], label[gone])  # stuff ids are the class ids
    assert np.array_equal(label[~gone], label0[~gone])


class Recorder(torch.nn.Module):
    """Wraps G and keeps the input of its last call."""

    def __init__(self, G):
        super().__init__()
        self.G, self.seen = G, []

    def forward(self, x):
        self.seen.append(x.clone())
        return self.G(x)


def test_an_instances_cluster_changes_only_its_own_feature_pixels(client):
    sid, state = new_canvas(client, start="blank", fill=ROAD)
    model = client.app.state.catalog.load_paint(MODEL)
    assert model.clusters.n(CAR) == 3
    recorder = Recorder(model.G)
    model.G = recorder
    try:
        with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
            edit(ws, {"op": "instance", "class": CAR, "box": [4, 30, 20, 40]},
                 {"op": "instance", "class": CAR, "box": [40, 30, 56, 40]})
            before = recorder.seen[-1]
            reply = edit(ws, {"op": "cluster", "instance": 6001, "cluster": 2})[-1]
            after = recorder.seen[-1]
            inst = maps(reply)[1]
            entry = next(e for e in reply["instances"] if e["id"] == 6001)
            assert entry == {"id": 6001, "class": CAR, "thing": True, "clusters": 3,
                             "cluster": 2, "choice": "picked"}
            feat = slice(scenes.LABEL_NC + 1, None)  # one-hot labels | boundary | features
            changed = (before[0, feat] != after[0, feat]).any(0)
            assert torch.equal(changed, torch.from_numpy(inst == 6001))
            centre = after[0, feat][:, torch.from_numpy(inst == 6001)].T
            assert torch.equal(centre, model.clusters.centres[CAR][2].expand_as(centre))
            assert torch.equal(before[0, :feat.start], after[0, :feat.start])
            # "random" draws one of the class's clusters; "default" goes back to cluster 0
            reply = edit(ws, {"op": "cluster", "instance": 6000, "cluster": "random"})[-1]
            entry = next(e for e in reply["instances"] if e["id"] == 6000)
            assert entry["choice"] == "random" and 0 <= entry["cluster"] < 3
            reply = edit(ws, {"op": "cluster", "instance": "all", "cluster": "default"})[-1]
            assert {e["cluster"] for e in reply["instances"]} == {0}
    finally:
        model.G = recorder.G


@pytest.mark.parametrize("edit_msg, why", [
    ({"op": "brush", "class": 8, "radius": 2, "points": [[1, 1]]}, "class must be from 0 to 7"),
    ({"op": "brush", "class": -1, "radius": 2, "points": [[1, 1]]}, "class must be from 0"),
    ({"op": "brush", "class": 2.5, "radius": 2, "points": [[1, 1]]}, "class must be an integer"),
    ({"op": "brush", "class": 2, "radius": 2, "points": [[64, 1]]}, "outside the 64x64 canvas"),
    ({"op": "brush", "class": 2, "radius": 65, "points": [[1, 1]]}, "radius must be from 0 to 64"),
    ({"op": "brush", "class": 2, "radius": 2, "points": [[1, 1]] * 513}, "1 to 512"),
    ({"op": "brush", "class": 2, "radius": 2, "points": [[1, "x"]]}, "must be a number"),
    ({"op": "instance", "class": ROAD, "box": [1, 1, 5, 5]}, "stuff class"),
    ({"op": "instance", "class": CAR, "box": [1, 1, 5]}, "box must be [x0, y0, x1, y1]"),
    ({"op": "instance", "class": CAR, "box": [1, 1, 5, 5], "shape": "star"}, "shape must be"),
    ({"op": "erase", "points": [[1, 1]]}, "nothing to erase there"),
    ({"op": "cluster", "instance": 6999, "cluster": 0}, "no instance 6999"),
    ({"op": "cluster", "instance": ROAD, "cluster": 3}, "cluster must be from 0 to 2"),
    ({"op": "cluster", "instance": "all", "cluster": 1}, '"random" or "default"'),
    ({"op": "fill"}, "op must be one of brush, instance, erase, cluster"),
])
def test_bad_edits_are_refused_with_one_line_and_the_canvas_goes_on(client, edit_msg, why):
    sid, state = new_canvas(client, start="blank", fill=ROAD)
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        err, reply = edit(ws, edit_msg)
        assert err["type"] == "error" and err["paint"] and err["seq"] == reply["seq"]
        assert why in err["message"] and "\n" not in err["message"], err
        assert reply["type"] == "painted"
        assert np.array_equal(maps(reply)[0], maps(state)[0])  # nothing changed
        reply = edit(ws, {"op": "brush", "class": SKY, "radius": 1, "points": [[3, 3]]})[-1]
        assert maps(reply)[0][3, 3] == SKY


def test_oversize_paint_messages_and_edits_before_a_canvas_are_refused(client):
    sid = client.post("/api/sessions").json()["session"]
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "paint", "seq": 1, "op": "brush", "class": 2, "radius": 1,
                      "points": [[1, 1]]})
        assert "start a canvas first" in ws.receive_json()["message"]
        ws.send_text(json.dumps({"type": "paint", "seq": 2, "op": "brush",
                                 "points": [[1.123456789, 1.123456789]] * 3000}))
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["paint"]
        assert msg["message"].startswith("paint message too large")
    r = client.get(f"/api/sessions/{sid}/paint/state")
    assert r.status_code == 404  # the socket closed: the session is gone


def test_saved_maps_and_image_round_trip(client):
    sid, state = new_canvas(client, seed=5)
    label, inst = maps(state)
    r = client.get(f"/api/sessions/{sid}/paint/label.png")
    assert r.status_code == 200 and "paint_label.png" in r.headers["content-disposition"]
    saved_label = Image.open(io.BytesIO(r.content))
    assert saved_label.mode == "L" and np.array_equal(np.asarray(saved_label), label)
    r = client.get(f"/api/sessions/{sid}/paint/instances.png")
    saved_inst = Image.open(io.BytesIO(r.content))
    assert saved_inst.mode.startswith("I;16") and np.array_equal(np.asarray(saved_inst), inst)
    image = client.get(f"/api/sessions/{sid}/paint/image.png").content
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(image))), picture(state["image"]))
    assert client.get(f"/api/sessions/{sid}/paint/other.png").status_code == 404
    # loaded into another canvas: the same maps and the same image
    sid2, _ = new_canvas(client, start="blank", fill=SKY)
    r = client.post(f"/api/sessions/{sid2}/paint/label",
                    content=client.get(f"/api/sessions/{sid}/paint/label.png").content)
    assert r.status_code == 200, r.text
    assert np.array_equal(maps(r.json())[0], label) and r.json()["origin"] == {"kind": "file"}
    r = client.post(f"/api/sessions/{sid2}/paint/instances",
                    content=client.get(f"/api/sessions/{sid}/paint/instances.png").content)
    assert np.array_equal(maps(r.json())[1], inst)
    assert np.array_equal(picture(r.json()["image"]), picture(state["image"]))


def test_bad_map_uploads_are_refused_with_one_line(client):
    sid, state = new_canvas(client, start="blank", fill=ROAD)
    bad = np.full((SIZE, SIZE), ROAD, np.uint8)
    bad[7, 5] = 9
    cases = [(png(bad), "label", "label value 9 at x=5, y=7 is outside 0..7"),
             (png(np.zeros((32, SIZE), np.uint8)), "label", "is 64x32; the canvas is 64x64"),
             (png(np.zeros((SIZE, SIZE, 3), np.uint8)), "label", "mode RGB"),
             (b"not a png", "label", "not a readable PNG"),
             (b"", "label", "the upload is empty"),
             (png(np.zeros((SIZE, 32), np.uint16)), "instances", "is 32x64; the canvas")]
    for data, kind, why in cases:
        r = client.post(f"/api/sessions/{sid}/paint/{kind}", content=data)
        assert r.status_code == 400 and why in r.json()["error"], (why, r.text)
    r = client.post(f"/api/sessions/{sid}/paint", json={"model": MODEL, "seed": -1})
    assert r.status_code == 400 and "seed must be from 0" in r.json()["error"]
    r = client.post(f"/api/sessions/{sid}/paint", json={"model": "file:style.safetensors"})
    assert r.status_code == 400 and "not a pix2pixHD model" in r.json()["error"]
    r = client.post(f"/api/sessions/{sid}/paint", json={"model": "file:../p2p.safetensors"})
    assert r.status_code == 400 and "without '..'" in r.json()["error"]
    r = client.post(f"/api/sessions/{sid}/paint", json={"model": MODEL, "start": "blank",
                                                        "fill": CAR})
    assert r.status_code == 400 and "stuff class" in r.json()["error"]
    assert np.array_equal(maps(client.get(f"/api/sessions/{sid}/paint/state").json())[0],
                          maps(state)[0])  # the canvas is still there


def test_edits_that_arrive_during_a_synthesis_are_synthesised_together(client, monkeypatch):
    from ganprior.app import paint
    sid, _ = new_canvas(client, start="blank", fill=ROAD)
    renders, real = [], paint.render

    def slow(state):
        renders.append(state.seq)
        time.sleep(0.3)
        real(state)
    monkeypatch.setattr(paint, "render", slow)
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        msgs = edit(ws, *({"op": "brush", "class": SKY, "radius": 1, "points": [[x, 5]]}
                          for x in range(10)))
    painted = [m for m in msgs if m["type"] == "painted"]
    assert len(renders) == len(painted) < 10 and renders[-1] == painted[-1]["seq"]
    assert (maps(painted[-1])[0][5, :10] == SKY).all()  # every edit applied


def test_paint_sessions_expire_as_the_drag_ones(model_dir):
    class Clock:
        now = 0.0

        def __call__(self):
            return self.now
    clock = Clock()
    with TestClient(create_app(model_dir=model_dir, device="cpu", session_ttl=100,
                               clock=clock)) as c:
        sid, _ = new_canvas(c, start="blank", fill=ROAD)
        clock.now = 60
        assert c.get(f"/api/sessions/{sid}/paint/state").status_code == 200
        clock.now = 161
        r = c.get(f"/api/sessions/{sid}/paint/label.png")
        assert r.status_code == 404 and "expired" in r.json()["error"]


def test_saved_files_render_the_same_image_with_ganprior_synth(client, model_dir, tmp_path):
    sid, state = new_canvas(client, seed=6)
    car = next(e["id"] for e in state["instances"] if e["class"] == CAR)
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        reply = edit(ws, {"op": "cluster", "instance": car, "cluster": 1})[-1]
        for name in ("label.png", "instances.png", "image.png"):  # while the tab is open
            r = client.get(f"/api/sessions/{sid}/paint/{name}")
            assert r.status_code == 200, r.text
            (tmp_path / name).write_bytes(r.content)
    run_cli("synth", "--model", model_dir / "p2p.safetensors", "--label", tmp_path / "label.png",
            "--inst", tmp_path / "instances.png", "--instance-cluster", f"{car}=1",
            "--out", tmp_path / "out")
    again = np.asarray(Image.open(tmp_path / "out" / "label.png"))
    assert np.array_equal(again, np.asarray(Image.open(tmp_path / "image.png")))
    assert np.array_equal(again, picture(reply["image"]))


def test_oversize_map_uploads_and_models_without_clusters_are_refused(model_dir, tmp_path):
    import shutil
    for suffix in (".safetensors", ".json"):  # the model without its clusters file
        shutil.copy(model_dir / f"p2p{suffix}", tmp_path / f"raw{suffix}")
    with TestClient(create_app(model_dir=tmp_path, device="cpu",
                               max_upload_bytes=1000)) as c:
        sid = c.post("/api/sessions").json()["session"]
        r = c.post(f"/api/sessions/{sid}/paint", json={"model": "file:raw.safetensors"})
        assert r.status_code == 400 and "no feature clusters yet" in r.json()["error"]
        assert "ganprior encode-features" in r.json()["error"]
        r = c.post(f"/api/sessions/{sid}/paint/label", content=b"x" * 2000)
        assert r.status_code == 413 and "1,000 bytes" in r.json()["error"]
