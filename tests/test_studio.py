"""The drag studio's server (src/ganprior/app/): sessions, the WebSocket drag loop, uploads,
model-folder confinement, expiry. A small StyleGAN2 saved into a temporary model folder keeps
each drag step to a few milliseconds."""
import base64
import io
import json
import os
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

# the photo inversion's `--loss auto` says once which loss it used when VGG16 is missing
pytestmark = pytest.mark.filterwarnings("ignore:--loss auto")
RES = 32
MODEL = "file:small.safetensors"
FAST = {"lr": 0.05, "max_steps": 6}   # moves the handle within a step or two on this model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_native(root / "small.safetensors", small_stylegan2(res=RES))
    os.makedirs(root / "sub")
    save_native(root / "sub" / "other.safetensors", small_stylegan2(res=RES, seed=1))
    outside = tmp_path_factory.mktemp("outside")
    save_native(outside / "secret.safetensors", small_stylegan2(res=RES, seed=2))
    os.symlink(outside / "secret.safetensors", root / "link.safetensors")
    os.symlink(outside, root / "linkdir")
    return root


@pytest.fixture(scope="module")
def client(model_dir):
    with TestClient(create_app(model_dir=model_dir, device="cpu")) as c:
        yield c


def new_session(client, seed=0, model=MODEL):
    sid = client.post("/api/sessions").json()["session"]
    r = client.post(f"/api/sessions/{sid}/generate", json={"model": model, "seed": seed,
                                                           "trunc": 1.0})
    assert r.status_code == 200, r.text
    return sid, r.json()


def until(ws, *kinds):
    """Messages up to and including the first of one of `kinds`."""
    out = []
    while True:
        out.append(ws.receive_json())
        if out[-1]["type"] in kinds:
            return out


def drag(ws, handles, targets, mask=None, **settings):
    ws.send_json({"type": "start", "handles": handles, "targets": targets, "mask": mask,
                  "settings": {**FAST, **settings}})
    return until(ws, "stopped", "error")


def decode(url):
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def png(w, h):
    buf = io.BytesIO()
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (h, w, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_page_and_static_files_need_nothing_from_the_internet(client):
    page = client.get("/")
    assert page.status_code == 200 and "ganprior studio" in page.text
    for name in ("app.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200
        assert "http://" not in r.text and "https://" not in r.text and "//cdn" not in r.text
    assert "https://" not in page.text and "http://" not in page.text


def test_models_lists_the_zoo_and_only_files_inside_the_folder(client):
    ids = [m["id"] for m in client.get("/api/models").json()["models"]]
    assert "zoo:stylegan2-digiface64" in ids
    assert MODEL in ids and "file:sub/other.safetensors" in ids
    # links out of the folder (a file, a folder) are not offered
    assert not any("link" in i or "secret" in i for i in ids)


def test_drag_streams_every_step_and_the_handle_moves_towards_its_target(client):
    sid, state = new_session(client, seed=1)
    assert state["resolution"] == RES and state["handles"] == []
    start = decode(state["image"])
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        msgs = drag(ws, [[14, 14]], [[20, 14]])
        kinds = [m["type"] for m in msgs]
        assert kinds[0] == "started" and kinds[-1] == "stopped", kinds
        steps = [m for m in msgs if m["type"] == "step"]
        assert [m["step"] for m in steps] == list(range(len(steps))) and len(steps) >= 2
        assert steps[0]["points"] == [[14.0, 14.0]]
        assert steps[0]["distances"] == [pytest.approx(6.0)]
        moved = [m["points"][0] for m in steps[1:]]
        assert any(p != [14.0, 14.0] for p in moved)
        assert min(m["distances"][0] for m in steps) < 6.0
        assert all(m["targets"] == [[20.0, 14.0]] for m in steps)
        assert not np.array_equal(decode(steps[-1]["image"]), start)
        reached = steps[-1]["distances"][0] <= 1.0  # the engine's stop distance at 32 px
        assert msgs[-1]["reason"] == ("reached" if reached else "max_steps")
        final = msgs[-1]["state"]
        assert final["handles"] == steps[-1]["points"] and final["undo"] == 1
        # downloads (while the tab is connected): the image, the latent (which renders
        # that image) and the points
        image = client.get(f"/api/sessions/{sid}/image.png")
        assert image.headers["content-type"] == "image/png"
        assert "attachment" in image.headers["content-disposition"]
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(image.content))),
                              decode(final["image"]))
        from safetensors.torch import load
        ws_file = load(client.get(f"/api/sessions/{sid}/latent.safetensors").content)["ws"]
        G = client.app.state.catalog.load(MODEL)
        assert ws_file.shape == (1, G.num_ws, G.w_dim)
        from ganprior.images import to_uint8
        assert np.array_equal(to_uint8(G.synthesize(ws_file))[0], decode(final["image"]))
        points = client.get(f"/api/sessions/{sid}/points.json").json()
        assert points["handles"] == final["handles"] and points["targets"] == [[20.0, 14.0]]
        assert points["model"] == MODEL and points["origin"] == {"kind": "seed", "seed": 1,
                                                                  "trunc": 1.0}


def test_stop_undo_and_reset(client):
    sid, state = new_session(client, seed=2)
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "start", "handles": [[10, 10]], "targets": [[16, 16]],
                      "settings": {"lr": 0.05, "max_steps": 2000}})
        assert ws.receive_json()["type"] == "started"
        assert ws.receive_json()["type"] == "step"
        ws.send_json({"type": "stop"})
        msgs = until(ws, "stopped")
        assert msgs[-1]["reason"] == "stopped"
        steps = [m for m in msgs if m["type"] == "step"]
        assert len(steps) < 100
        undone = client.post(f"/api/sessions/{sid}/undo").json()
        assert undone["image"] == state["image"]           # the image before the drag
        assert undone["handles"] == [[10.0, 10.0]]         # with the points as placed
        assert client.post(f"/api/sessions/{sid}/undo").json()["error"] == "nothing to undo"
        drag(ws, [[10, 10]], [[16, 16]])
        reset = client.post(f"/api/sessions/{sid}/reset").json()
        assert reset["image"] == state["image"] and reset["handles"] == [] and reset["undo"] == 0


def test_requests_while_a_drag_runs_are_refused(client):
    sid, _ = new_session(client, seed=3)
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "start", "handles": [[10, 10]], "targets": [[20, 20]],
                      "settings": {"lr": 0.01, "max_steps": 2000}})
        assert ws.receive_json()["type"] == "started"
        r = client.post(f"/api/sessions/{sid}/generate", json={"model": MODEL, "seed": 4})
        assert r.status_code == 409 and "running a drag" in r.json()["error"]
        ws.send_json({"type": "start", "handles": [[10, 10]], "targets": [[20, 20]]})
        assert until(ws, "error")[-1]["message"] == "already running; stop first"
        ws.send_json({"type": "stop"})
        until(ws, "stopped")


@pytest.mark.parametrize("handles, targets, why", [
    ([[40, 10]], [[10, 10]], "outside the 32x32 image"),
    ([[10, -1]], [[10, 10]], "outside the 32x32 image"),
    ([[10, 10]], [[10, 31.5]], "outside the 32x32 image"),
    ([[10, 10, 3]], [[10, 12]], "each point is [x, y]"),
    ([["10", 10]], [[10, 12]], "must be a number"),
    ([[True, 10]], [[10, 12]], "must be a number"),
    ("10,10", [[10, 12]], "must be a list"),
    ([[10, 10]], [], "every handle needs a target"),
    ([], [], "at least one handle"),
    ([[1, 1]] * 33, [[2, 2]] * 33, "at most 32"),
])
def test_bad_points_are_refused_with_one_line(client, handles, targets, why):
    sid, _ = new_session(client)
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "start", "handles": handles, "targets": targets})
        err = ws.receive_json()
        assert err["type"] == "error" and why in err["message"], err
        assert "\n" not in err["message"]
        assert drag(ws, [[10, 10]], [[12, 12]])[-1]["type"] == "stopped"  # still usable


def test_non_finite_points_settings_and_bad_masks_are_refused(client):
    sid, _ = new_session(client)
    full = base64.b64encode(bytes(RES * RES)).decode()  # all fixed
    cases = [
        ('{"type": "start", "handles": [[NaN, 1]], "targets": [[2, 2]]}', "finite number"),
        ({"handles": [[10, 10]], "targets": [[12, 12]], "settings": {"lr": -1}}, "lr must be"),
        ({"handles": [[10, 10]], "targets": [[12, 12]], "settings": {"tracking": "x"}},
         "tracking must be paper or robust"),
        ({"handles": [[10, 10]], "targets": [[12, 12]], "settings": {"evil": 1}},
         "unknown drag settings: evil"),
        ({"handles": [[10, 10]], "targets": [[12, 12]], "mask": "AAAA"}, "the mask has 3 pixels"),
        ({"handles": [[10, 10]], "targets": [[12, 12]], "mask": "not base64!"}, "not valid base64"),
        ({"handles": [[10, 10]], "targets": [[12, 12]], "mask": full}, "in the fixed area"),
        ("not json", "unknown message"),
        ({"type": "fly"}, "unknown message"),
    ]
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        for msg, why in cases:
            if isinstance(msg, dict):
                msg = json.dumps({"type": "start", **msg} if "type" not in msg else msg)
            ws.send_text(msg)
            err = ws.receive_json()
            assert err["type"] == "error" and why in err["message"], (msg, err)


def test_mask_and_robust_tracking_reach_the_engine(client):
    sid, state = new_session(client, seed=5)
    mask = np.zeros((RES, RES), np.uint8)
    mask[6:22, 6:22] = 1  # flexible square around the handle; the rest is fixed
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        msgs = drag(ws, [[14, 14]], [[18, 14]], base64.b64encode(mask.tobytes()).decode(),
                    lambda_mask=20.0, tracking="robust", space="w+")
        assert msgs[-1]["type"] == "stopped"
        points = client.get(f"/api/sessions/{sid}/points.json").json()
        assert points["mask_flexible_pixels"] == 256
        assert points["settings"]["tracking"] == "robust"
    start, end = decode(state["image"]).astype(float), decode(msgs[-1]["state"]["image"])
    change = np.abs(end - start).mean(axis=2)
    assert change.max() > 0 and change[mask == 0].mean() < change[mask == 1].mean()


def test_w_space_reaches_the_engine(client):
    sid, _ = new_session(client, seed=5)
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        msgs = drag(ws, [[14, 14]], [[18, 14]], space="w")
        assert msgs[-1]["type"] == "stopped"
        from safetensors.torch import load
        ws_file = load(client.get(f"/api/sessions/{sid}/latent.safetensors").content)["ws"]
        points = client.get(f"/api/sessions/{sid}/points.json").json()
    # w space moves one vector shared by every row: a seed's equal rows stay equal
    assert (ws_file - ws_file[:, :1]).abs().max() == 0
    assert points["drag_steps"] > 0 and points["settings"]["space"] == "w"


def test_generate_refuses_bad_values(client):
    sid = client.post("/api/sessions").json()["session"]
    for body, why in [({"model": MODEL, "seed": -1}, "seed must be from 0"),
                      ({"model": MODEL, "seed": 1.5}, "seed must be an integer"),
                      ({"model": MODEL, "seed": 2 ** 40}, "seed must be from 0"),
                      ({"model": MODEL, "trunc": "a"}, "truncation must be a number"),
                      ({"model": "zoo:nope"}, "not in the zoo"),
                      ({"model": 3}, "give one of the ids")]:
        r = client.post(f"/api/sessions/{sid}/generate", json=body)
        assert r.status_code == 400 and why in r.json()["error"], (body, r.text)
    r = client.post(f"/api/sessions/{sid}/generate", content=b"[1, 2]")
    assert r.status_code == 400 and "JSON object" in r.json()["error"]
    assert client.get(f"/api/sessions/{sid}/image.png").json()["error"].startswith("generate an")


@pytest.mark.parametrize("name", [
    "../outside/secret.safetensors", "/etc/passwd", "sub/../../x.safetensors",
    "sub/../small.safetensors",  # '..' is refused even when it stays inside
    "link.safetensors", "linkdir/secret.safetensors", "missing.safetensors",
    "sub\\..\\..\\x.safetensors", "small.safetensors.json", "", "./small.safetensors/",
])
def test_model_paths_outside_the_folder_are_refused(client, model_dir, name):
    sid = client.post("/api/sessions").json()["session"]
    r = client.post(f"/api/sessions/{sid}/generate", json={"model": f"file:{name}", "seed": 0})
    assert r.status_code == 400, r.text
    msg = r.json()["error"]
    assert "model folder" in msg or "not a checkpoint" in msg or "relative" in msg, msg
    r = client.post(f"/api/sessions/{sid}/photo", params={"model": f"file:{name}"},
                    content=png(40, 40))
    assert r.status_code == 400


def test_a_server_without_model_folder_opens_zoo_models_only(model_dir):
    with TestClient(create_app(device="cpu")) as c:
        assert not any(m["id"].startswith("file:") for m in c.get("/api/models").json()["models"])
        sid = c.post("/api/sessions").json()["session"]
        r = c.post(f"/api/sessions/{sid}/generate", json={"model": MODEL})
        assert r.status_code == 400 and "no model folder" in r.json()["error"]


def test_uploads_over_the_byte_and_pixel_limits_are_refused(model_dir):
    app = create_app(model_dir=model_dir, device="cpu", max_upload_bytes=50_000,
                     max_upload_pixels=100 * 100)
    with TestClient(app) as c:
        sid = c.post("/api/sessions").json()["session"]
        url = f"/api/sessions/{sid}/photo?model={MODEL}"
        big = png(200, 200)  # random pixels: ~120 KB
        assert len(big) > 50_000
        r = c.post(url, content=big)
        assert r.status_code == 413 and "50,000 bytes" in r.json()["error"], r.text

        def chunks():  # no Content-Length: the stream itself is cut off
            for i in range(0, len(big), 8192):
                yield big[i:i + 8192]
        r = c.post(url, content=chunks())
        assert r.status_code == 413 and "more than the 50,000 bytes" in r.json()["error"]
        # small in bytes, too many pixels (one colour compresses to almost nothing)
        buf = io.BytesIO()
        Image.new("RGB", (101, 100)).save(buf, "PNG")
        r = c.post(url, content=buf.getvalue())
        assert r.status_code == 400 and "10,100 pixels" in r.json()["error"], r.text
        for data, why in [(b"", "empty"), (b"not an image" * 10, "cannot read image"),
                          (png(100, 4), "too small")]:
            r = c.post(url, content=data)
            assert r.status_code == 400 and why in r.json()["error"], (why, r.text)


def test_photo_is_inverted_with_progress_then_dragged(client):
    sid = client.post("/api/sessions").json()["session"]
    r = client.post(f"/api/sessions/{sid}/photo?model={MODEL}", content=png(48, 40))
    assert r.status_code == 200, r.text
    assert decode(r.json()["photo"]).shape == (RES, RES, 3)  # centre square at the model's size
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "invert", "steps": 12})
        msgs = until(ws, "inverted", "error")
        progress = [m for m in msgs if m["type"] == "progress"]
        assert [m["step"] for m in progress] == list(range(1, 13)) and progress[-1]["done"]
        shown = [m["step"] for m in progress if m["image"] is not None]
        assert shown == [10, 12]  # the current fit every 10 steps and at the end
        assert decode(progress[-1]["image"]).shape == (RES, RES, 3)
        state = msgs[-1]["state"]
        assert state["origin"]["kind"] == "photo" and state["origin"]["inversion_steps"] == 12
        assert state["origin"]["loss"].startswith("mse")  # loss auto at 32 px
        assert drag(ws, [[10, 10]], [[14, 10]])[-1]["type"] == "stopped"
        ws.send_json({"type": "invert", "steps": 0})
        assert "inversion steps must be from 1" in until(ws, "error")[-1]["message"]


def test_photo_with_pti_tuning_drags_with_its_own_generator(client):
    sid = client.post("/api/sessions").json()["session"]
    client.post(f"/api/sessions/{sid}/photo?model={MODEL}", content=png(40, 40))
    shared = client.app.state.catalog.load(MODEL)
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "invert", "steps": 2, "tune_steps": 3})
        msgs = until(ws, "inverted", "error")
        assert [m["type"] for m in msgs[-2:]] == ["tuning", "inverted"], msgs[-1]
        assert msgs[-2]["steps"] == 3
        origin = msgs[-1]["state"]["origin"]
        assert origin["tuning_steps"] == 3 and isinstance(origin["tuned_psnr"], float)
        s = client.app.state.store.get(sid)
        assert s.G is not shared and s.running is None
        untuned = shared.synthesize(s.start_ws)
        assert not torch.equal(s.G.synthesize(s.start_ws), untuned)  # the tuned copy draws
        assert drag(ws, [[10, 10]], [[14, 10]])[-1]["type"] == "stopped"
        ws.send_json({"type": "invert", "steps": 2, "tune_steps": -1})
        assert "tuning steps must be from 0" in until(ws, "error")[-1]["message"]
    assert all(torch.equal(v, before[k]) for k, v in shared.state_dict().items())


def test_photos_on_a_generator_without_w_are_inverted_in_z(client):
    sid = client.post("/api/sessions").json()["session"]
    r = client.post(f"/api/sessions/{sid}/photo?model=zoo:dcgan-digiface64", content=png(40, 40))
    if "weights package" in r.text:
        pytest.skip("dcgan-digiface64 weights are not installed")
    assert r.status_code == 200, r.text
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "invert", "steps": 2})
        state = until(ws, "inverted", "error")[-1]["state"]
        assert state["resolution"] == 64 and state["origin"]["inversion_steps"] == 2


def test_two_sessions_run_at_once_without_cross_talk(client):
    def alone(seed, handle, target):
        sid, _ = new_session(client, seed=seed)
        with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
            msgs = drag(ws, [handle], [target])
        return [(m["points"], m["image"]) for m in msgs if m["type"] == "step"]
    ref_a, ref_b = alone(1, [14, 14], [20, 14]), alone(2, [8, 20], [8, 26])
    assert ref_a != ref_b

    sa, _ = new_session(client, seed=1)
    sb, _ = new_session(client, seed=2)
    got = {}
    with client.websocket_connect(f"/api/sessions/{sa}/ws") as wa, \
            client.websocket_connect(f"/api/sessions/{sb}/ws") as wb:
        for ws, h, t in ((wa, [14, 14], [20, 14]), (wb, [8, 20], [8, 26])):
            ws.send_json({"type": "start", "handles": [h], "targets": [t], "settings": FAST})
        for key, ws in (("a", wa), ("b", wb)):
            got[key] = [(m["points"], m["image"]) for m in until(ws, "stopped")
                        if m["type"] == "step"]
    assert got["a"] == ref_a and got["b"] == ref_b


def test_one_slow_session_does_not_hold_up_another(model_dir, monkeypatch):
    """Steps are queued one at a time: with a single worker thread and a session whose steps
    take 0.3 s each (50 of them: 15 s), another session's whole drag still runs, each of its
    steps waiting for at most one of the slow ones."""
    from ganprior.app import sessions
    slow_sid = {}
    real = sessions.StudioSession.drag_step

    def drag_step(self):
        if self.id == slow_sid.get("id"):
            time.sleep(0.3)
        return real(self)
    monkeypatch.setattr(sessions.StudioSession, "drag_step", drag_step)
    with TestClient(create_app(model_dir=model_dir, device="cpu", step_workers=1)) as c:
        slow, _ = new_session(c, seed=1)
        fast, _ = new_session(c, seed=2)
        slow_sid["id"] = slow
        s_slow = c.app.state.store.get(slow)
        with c.websocket_connect(f"/api/sessions/{slow}/ws") as ws_slow, \
                c.websocket_connect(f"/api/sessions/{fast}/ws") as ws_fast:
            ws_slow.send_json({"type": "start", "handles": [[10, 10]], "targets": [[20, 20]],
                               "settings": {"lr": 1e-5, "max_steps": 50}})
            assert ws_slow.receive_json()["type"] == "started"
            msgs = drag(ws_fast, [[14, 14]], [[20, 14]])
            slow_steps = s_slow.steps_run
            ws_slow.send_json({"type": "stop"})
    assert msgs[-1]["type"] == "stopped"
    fast_steps = sum(m["type"] == "step" for m in msgs)
    assert 1 <= slow_steps <= fast_steps + 2, (slow_steps, fast_steps)


def test_disconnect_mid_drag_stops_the_work_and_frees_the_session(client):
    sid, _ = new_session(client, seed=6)
    s = client.app.state.store.get(sid)
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "start", "handles": [[10, 10]], "targets": [[20, 20]],
                      "settings": {"lr": 1e-5, "max_steps": 2000}})
        assert ws.receive_json()["type"] == "started"
        assert ws.receive_json()["type"] == "step"
    deadline = time.monotonic() + 10
    while (sid in client.app.state.store or not s.closed or s.G is not None) and \
            time.monotonic() < deadline:
        time.sleep(0.02)
    assert sid not in client.app.state.store
    assert s.closed and s.drag is None and s.ws is None and s.G is None
    steps = s.steps_run
    time.sleep(0.3)
    assert s.steps_run == steps  # nothing runs for it any more
    r = client.get(f"/api/sessions/{sid}/state")
    assert r.status_code == 404 and "expired or was closed" in r.json()["error"]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_idle_sessions_expire(model_dir):
    clock = Clock()
    with TestClient(create_app(model_dir=model_dir, device="cpu", session_ttl=100,
                               clock=clock)) as c:
        sid, _ = new_session(c)
        kept, _ = new_session(c)
        clock.now = 60
        assert c.get(f"/api/sessions/{kept}/state").status_code == 200  # in use: stays
        clock.now = 101
        r = c.get(f"/api/sessions/{sid}/state")
        assert r.status_code == 404 and "expired" in r.json()["error"]
        assert sid not in c.app.state.store and kept in c.app.state.store
        with c.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
            msg = ws.receive_json()
            assert msg["type"] == "error" and msg["expired"]
        # a tab left open and idle is told, then disconnected
        with c.websocket_connect(f"/api/sessions/{kept}/ws") as ws:
            clock.now = 500
            c.portal.call(c.app.state.reap)
            assert ws.receive_json() == {"type": "error", "message": "session expired (idle)",
                                         "expired": True}
        assert kept not in c.app.state.store


def test_session_limit_and_one_socket_per_session(model_dir):
    with TestClient(create_app(model_dir=model_dir, device="cpu", max_sessions=2)) as c:
        sid = c.post("/api/sessions").json()["session"]
        c.post("/api/sessions")
        r = c.post("/api/sessions")
        assert r.status_code == 503 and "2 open sessions" in r.json()["error"]
        with c.websocket_connect(f"/api/sessions/{sid}/ws") as first:
            with c.websocket_connect(f"/api/sessions/{sid}/ws") as second:
                assert "already open" in second.receive_json()["message"]
            first.send_json({"type": "ping"})
            assert first.receive_json() == {"type": "pong"}
        r = c.delete(f"/api/sessions/{sid}")
        assert r.status_code == 404  # its socket closed: the session is gone already


def test_serve_says_what_is_missing_without_the_ui_extras(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    r = run_cli("serve", ok=False)
    assert r.exit_code == 1
    assert "error: the studio needs the ui extras (uvicorn is missing)" in r.output


@pytest.mark.parametrize("args, why", [
    (["--port", "0"], "--port must be an integer from 1"),
    (["--models", "/nonexistent/models"], "not a folder"),
    (["--max-upload-mb", "0"], "--max-upload-mb must be >"),
    (["--device", "meta"], "--device must be"),
])
def test_serve_refuses_bad_options(args, why):
    r = run_cli("serve", *args, ok=False)
    assert r.exit_code == 1 and why in r.output, r.output


def test_a_failing_step_is_one_error_line_and_the_session_goes_on(client, monkeypatch):
    from ganprior.app import sessions
    sid, _ = new_session(client, seed=7)

    def broken(self):
        raise RuntimeError("device lost\nsecond line")
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        with monkeypatch.context() as m:
            m.setattr(sessions.StudioSession, "drag_step", broken)
            msgs = drag(ws, [[10, 10]], [[12, 12]])
        assert msgs[-1] == {"type": "error", "message": "internal error: device lost"}
        assert client.get(f"/api/sessions/{sid}/state").json()["undo"] == 1  # not running
        assert drag(ws, [[10, 10]], [[12, 12]])[-1]["type"] == "stopped"
        ws.send_text("x" * ((4 << 20) + 1))
        assert "message too large" in ws.receive_json()["message"]


def test_an_unexpected_failure_is_a_500_with_one_line(model_dir, monkeypatch):
    app = create_app(model_dir=model_dir, device="cpu")
    monkeypatch.setattr(app.state.catalog, "load", lambda model_id: 1 / 0)
    with TestClient(app, raise_server_exceptions=False) as c:
        sid = c.post("/api/sessions").json()["session"]
        r = c.post(f"/api/sessions/{sid}/generate", json={"model": MODEL})
        assert r.status_code == 500
        assert r.json() == {"error": "internal error: division by zero"}


def test_a_local_studio_answers_local_names_only(model_dir):
    app = create_app(model_dir=model_dir, device="cpu", allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:7860") as c:
        assert c.get("/api/models").status_code == 200
        sid = c.post("/api/sessions").json()["session"]
        # DNS rebinding: a page of evil.example whose name now points at 127.0.0.1
        assert c.get("/api/models", headers={"host": "evil.example:7860"}).status_code == 400
        # a cross-site WebSocket from a page elsewhere is refused; the studio's own page works
        from starlette.websockets import WebSocketDisconnect
        url = "ws://127.0.0.1:7860"
        with pytest.raises(WebSocketDisconnect):
            with c.websocket_connect(f"{url}/api/sessions/{sid}/ws",
                                     headers={"origin": "http://evil.example"}) as ws:
                ws.receive_json()
        with c.websocket_connect(f"{url}/api/sessions/{sid}/ws",
                                 headers={"origin": "http://127.0.0.1:7860"}) as ws:
            ws.send_json({"type": "ping"})
            assert ws.receive_json() == {"type": "pong"}
