"""The studio's web server: `create_app(...)` builds the FastAPI app `ganprior serve` runs.

HTTP (JSON unless said otherwise; errors are {"error": "one line"} with 400 bad input,
404 unknown/expired session, 409 busy, 413 upload too large, 503 too many sessions):

    GET  /                                  the page (static/index.html)
    GET  /api/models                        models to choose from, limits, defaults
    POST /api/sessions                      a new session -> {"session": id, "ttl": seconds}
    DELETE /api/sessions/{id}
    POST /api/sessions/{id}/generate        {"model", "seed", "trunc"} -> state
    POST /api/sessions/{id}/photo?model=ID  raw image bytes -> {"photo": data URL}; then
                                            invert over the socket
    POST /api/sessions/{id}/undo | /reset   -> state
    GET  /api/sessions/{id}/state           -> state
    GET  /api/sessions/{id}/image.png | latent.safetensors | points.json   downloads
Paint tab (pix2pixHD, app/paint.py):
    POST /api/sessions/{id}/paint           {"model", "start": "scene"|"blank", "seed", "fill"}
                                            -> canvas (classes, palette, maps, image)
    POST /api/sessions/{id}/paint/label | /paint/instances   raw PNG -> canvas
    GET  /api/sessions/{id}/paint/state
    GET  /api/sessions/{id}/paint/label.png | instances.png | image.png     downloads

WebSocket /api/sessions/{id}/ws, JSON messages. Client -> server:
    {"type": "start", "handles": [[x, y], ...], "targets": [...], "mask": base64 | null,
     "settings": {"lr", "lambda_mask", "tracking", "max_steps", ...}}
    {"type": "invert", "steps": N, "tune_steps": K (0: no PTI)}
    {"type": "stop"}   {"type": "ping"}
    {"type": "paint", "seq": N, "op": ...}     one edit of the Paint tab's canvas (paint.py)
Server -> client:
    drag:      "started", one "step" per optimisation step (image as a PNG data URL, points,
               targets, distances, loss, ms), then "stopped" {"reason", "state"}; reason is
               "reached" (every handle within the engine's stop distance), "max_steps" or
               "stopped" (asked to);
    inversion: one "progress" per step {"step", "steps", "psnr", "done", "image": the
               current fit every 10 steps, else null}, "tuning" {"steps"} when PTI follows,
               then "inverted" {"state"};
    paint:     "painted" {"seq": the last edit applied, maps, instances, image, ms} after each
               batch of edits (edits that arrive while one synthesis runs are applied
               together, then the newest canvas is synthesised once);
    "error" {"message"} for anything refused ("paint": true, "seq" for a refused edit), "pong".

The socket is the tab's lifeline: when it closes, the session's run is stopped (the step in
flight finishes, no other starts) and the session is freed. Steps run one at a time per
session (its lock) in a small shared pool, queued first come first served, so a session waits
for at most one step of each other running session.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..errors import GanpriorError
from . import paint
from .catalog import ModelCatalog
from .sessions import Busy, Full, SessionExpired, SessionStore, StudioSession

STATIC = Path(__file__).resolve().parent / "static"
MAX_MESSAGE = 4 << 20        # bytes of one socket message (a 1024 px mask is ~1.4 MB)
MAX_PAINT_MESSAGE = 64 << 10  # bytes of one paint edit (512 points take ~10 KB)
REAP_EVERY = 30.0            # seconds between expiry sweeps
DEFAULT_INVERT_STEPS = 200
log = logging.getLogger("ganprior.studio")


class TooLarge(GanpriorError):
    """An upload over the byte limit."""


def png_bytes(image) -> bytes:
    """[1, C, H, W] in [-1, 1] -> PNG file bytes (8-bit, as images.save_image)."""
    from PIL import Image

    from ..images import to_picture
    arr = to_picture(image)
    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


def data_url(image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def session_state(s: StudioSession) -> dict:
    """What the page redraws from: the image, its size, the points, the undo depth."""
    return {"image": data_url(s.image()), "resolution": s.G.img_resolution,
            "model": s.model_id, "origin": s.origin,
            "handles": [list(p) for p in s.handles], "targets": [list(p) for p in s.targets],
            "undo": len(s.history), "steps_run": s.steps_run}


def paint_state(s: StudioSession, full: bool = True) -> dict:
    """The Paint tab's canvas as the page redraws it (paint.view plus the image)."""
    p = s.painting()
    return {**paint.view(p, full), "image": data_url(p.image)}


def _one_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _error(status: int, message) -> JSONResponse:
    return JSONResponse({"error": _one_line(message)}, status_code=status)


def create_app(model_dir=None, device="cpu", session_ttl: float = 1800.0,
               max_sessions: int = 16, max_upload_bytes: int = 8 << 20,
               max_upload_pixels: int = 16_000_000, step_workers: int = 4,
               allowed_hosts: list[str] | None = None, clock=time.monotonic) -> FastAPI:
    """The studio app. `model_dir`: the only folder checkpoint files may be opened from
    (None: zoo models only); `device`: where models run (a torch device or its name);
    sessions idle for `session_ttl` seconds (by `clock`) are dropped; uploads over
    `max_upload_bytes` or `max_upload_pixels` are refused; `step_workers` threads run the
    optimisation steps of every session. With `allowed_hosts`, requests whose Host header
    names another host, and sockets opened from pages of another host (Origin), are refused:
    a web page elsewhere cannot reach a local studio through DNS rebinding or a cross-site
    WebSocket."""
    from ..device import pick_device
    dev = pick_device(device) if isinstance(device, str) else device
    catalog = ModelCatalog(model_dir, dev)
    store = SessionStore(ttl=session_ttl, max_sessions=max_sessions, clock=clock)
    pool = ThreadPoolExecutor(max_workers=step_workers, thread_name_prefix="studio-step")
    sockets: dict[str, WebSocket] = {}

    async def reap():
        """Drop idle sessions; a tab still connected to one is told, then disconnected."""
        for sid in store.reap():
            ws = sockets.get(sid)
            if ws is not None:
                await _send(ws, {"type": "error", "message": "session expired (idle)",
                                 "expired": True})
                await _close(ws)

    async def reaper():
        while True:
            await asyncio.sleep(min(REAP_EVERY, max(session_ttl / 4, 0.05)))
            try:
                await reap()
            except Exception:  # keep sweeping whatever one session did
                log.exception("studio: expiring sessions")

    async def lifespan(app):
        task = asyncio.create_task(reaper())
        yield
        task.cancel()
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="ganprior studio", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.store, app.state.catalog, app.state.sockets = store, catalog, sockets
    app.state.reap = reap
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    def answer(status):
        async def handler(request, e):
            return _error(status, str(e))
        return handler

    # what the client did wrong -> its status; the message is the exception's one line
    for error, status in ((SessionExpired, 404), (Busy, 409), (Full, 503), (TooLarge, 413),
                          (GanpriorError, 400), (ValueError, 400)):
        app.add_exception_handler(error, answer(status))

    @app.exception_handler(Exception)
    async def internal(request, e):
        log.exception("studio request %s", request.url.path)
        return _error(500, f"internal error: {_one_line(e)}")

    def idle_session(sid) -> StudioSession:
        """The session, refused early when it runs something (the session's own methods
        check again under its lock)."""
        s = store.get(sid)
        s._require_idle()
        return s

    async def json_body(request: Request) -> dict:
        raw = await _read_limited(request, MAX_MESSAGE, "request")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise ValueError("the request body is not JSON")
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        return body

    @app.get("/")
    async def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/models")
    async def models():
        choices = await run_in_threadpool(catalog.choices)
        return {"models": [c.as_json() for c in choices],
                "limits": {"upload_bytes": max_upload_bytes, "upload_pixels": max_upload_pixels,
                           "session_ttl": session_ttl},
                "defaults": {"model": "zoo:stylegan2-digiface64", "invert_steps":
                             DEFAULT_INVERT_STEPS, "paint_model": "zoo:pix2pixhd-scenes128"}}

    @app.post("/api/sessions")
    async def new_session():
        s = store.create()
        return {"session": s.id, "ttl": session_ttl}

    @app.delete("/api/sessions/{sid}")
    async def close_session(sid: str):
        store.get(sid)
        store.remove(sid)
        return {"closed": sid}

    @app.post("/api/sessions/{sid}/generate")
    async def generate(sid: str, request: Request):
        body = await json_body(request)
        s = idle_session(sid)

        def work():
            G = catalog.load(body.get("model"))
            s.locked(s.start_from_seed, body.get("model"), G, body.get("seed", 0),
                     body.get("trunc", 1.0))
            return s.locked(session_state, s)
        return await run_in_threadpool(work)

    @app.post("/api/sessions/{sid}/photo")
    async def photo(sid: str, request: Request, model: str = "zoo:stylegan2-digiface64"):
        s = idle_session(sid)
        data = await _read_limited(request, max_upload_bytes, "photo")
        if not data:
            raise ValueError("photo: the upload is empty")

        def work():
            G = catalog.load(model)
            target = s.locked(s.set_photo, model, G, data, max_upload_pixels)
            return {"photo": data_url(target), "resolution": G.img_resolution}
        return await run_in_threadpool(work)

    @app.post("/api/sessions/{sid}/undo")
    async def undo(sid: str):
        s = idle_session(sid)
        return await run_in_threadpool(lambda: s.locked(lambda: (s.undo(), session_state(s))[1]))

    @app.post("/api/sessions/{sid}/reset")
    async def reset(sid: str):
        s = idle_session(sid)
        return await run_in_threadpool(lambda: s.locked(lambda: (s.reset(), session_state(s))[1]))

    @app.get("/api/sessions/{sid}/state")
    async def state(sid: str):
        s = store.get(sid)
        return await run_in_threadpool(s.locked, session_state, s)

    @app.get("/api/sessions/{sid}/image.png")
    async def download_image(sid: str):
        s = store.get(sid)
        data = await run_in_threadpool(s.locked, lambda: png_bytes(s.image()))
        return _attachment(data, "image/png", "drag.png")

    @app.get("/api/sessions/{sid}/latent.safetensors")
    async def download_latent(sid: str):
        s = store.get(sid)
        data = await run_in_threadpool(s.locked, s.latent_bytes)
        return _attachment(data, "application/octet-stream", "drag.safetensors")

    @app.get("/api/sessions/{sid}/points.json")
    async def download_points(sid: str):
        s = store.get(sid)
        record = await run_in_threadpool(s.locked, s.points_record)
        return _attachment(json.dumps(record, indent=1).encode(), "application/json",
                           "drag_points.json")

    async def in_pool(s: StudioSession, fn, *args):
        """fn(*args) under the session's lock in the step pool (syntheses are steps)."""
        return await asyncio.get_running_loop().run_in_executor(pool, s.locked, fn, *args)

    @app.post("/api/sessions/{sid}/paint")
    async def paint_start(sid: str, request: Request):
        body = await json_body(request)
        s = store.get(sid)
        model_id = body.get("model")
        model = await run_in_threadpool(catalog.load_paint, model_id)  # loading is not a step

        def work():
            s.paint = paint.start_paint(model_id, model, body.get("start", "scene"),
                                        body.get("seed", 0), body.get("fill"))
            return paint_state(s)
        return await in_pool(s, work)

    async def paint_upload(sid: str, request: Request, kind: str):
        s = store.get(sid)
        what = "label map" if kind == "label" else "instance map"
        data = await _read_limited(request, max_upload_bytes, what)
        if not data:
            raise ValueError(f"{what}: the upload is empty")

        def work():
            p = s.painting()
            paint.load_map(p, data, kind)
            paint.render(p)
            return paint_state(s)
        return await in_pool(s, work)

    @app.post("/api/sessions/{sid}/paint/label")
    async def paint_label(sid: str, request: Request):
        return await paint_upload(sid, request, "label")

    @app.post("/api/sessions/{sid}/paint/instances")
    async def paint_instances(sid: str, request: Request):
        return await paint_upload(sid, request, "inst")

    @app.get("/api/sessions/{sid}/paint/state")
    async def paint_get(sid: str):
        s = store.get(sid)
        return await run_in_threadpool(s.locked, paint_state, s)

    @app.get("/api/sessions/{sid}/paint/{name}")
    async def paint_download(sid: str, name: str):
        files = {"label.png": lambda p: paint.label_file(p),
                 "instances.png": lambda p: paint.instance_file(p),
                 "image.png": lambda p: png_bytes(p.image)}
        if name not in files:
            return _error(404, f"no such download: {name[:100]}")
        s = store.get(sid)
        data = await run_in_threadpool(s.locked, lambda: files[name](s.painting()))
        return _attachment(data, "image/png", f"paint_{name}")

    @app.websocket("/api/sessions/{sid}/ws")
    async def socket(websocket: WebSocket, sid: str):
        origin = websocket.headers.get("origin")
        if allowed_hosts and origin and urlsplit(origin).hostname not in allowed_hosts:
            return await websocket.close(code=1008)  # a page of another site: refused
        await websocket.accept()
        try:
            s = store.get(sid)
        except SessionExpired as e:
            await _send(websocket, {"type": "error", "message": str(e), "expired": True})
            return await _close(websocket)
        if sid in sockets:
            await _send(websocket, {"type": "error", "message": "this session is already open "
                                    "in another tab"})
            return await _close(websocket)
        sockets[sid] = websocket
        run = Run(websocket, s, store, pool)
        try:
            while True:
                text = await websocket.receive_text()
                store.touch(s)
                await run.handle(text)
        except WebSocketDisconnect:
            pass
        finally:  # the tab is gone: stop its work and free the session
            sockets.pop(sid, None)
            run.cancel()
            store.remove(sid)

    return app


class Run:
    """One socket's commands: at most one drag or inversion at a time, run as a task so the
    socket keeps reading (a "stop" arrives while steps run)."""

    def __init__(self, websocket: WebSocket, s: StudioSession, store: SessionStore, pool):
        self.ws, self.s, self.store, self.pool = websocket, s, store, pool
        self.task: asyncio.Task | None = None
        self.stop_requested = False
        self.painter = Painter(websocket, s, pool)

    async def handle(self, text: str):
        if len(text) > MAX_MESSAGE:
            return await _send(self.ws, {"type": "error", "message": f"message too large "
                                         f"({len(text):,} bytes; at most {MAX_MESSAGE:,})"})
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "ping":
            return await _send(self.ws, {"type": "pong"})
        if kind == "stop":
            self.stop_requested = True
            return
        if kind == "paint":
            if len(text) > MAX_PAINT_MESSAGE:
                return await _send(self.ws, {"type": "error", "paint": True, "seq":
                                             msg.get("seq"), "message": f"paint message too "
                                             f"large ({len(text):,} bytes; at most "
                                             f"{MAX_PAINT_MESSAGE:,})"})
            return self.painter.submit(msg)
        if kind not in ("start", "invert"):
            return await _send(self.ws, {"type": "error", "message": "unknown message: send "
                                         "start, invert, paint, stop or ping"})
        if self.task is not None and not self.task.done():
            return await _send(self.ws, {"type": "error", "message": "already running; stop first"})
        self.stop_requested = False
        job = self.drag(msg) if kind == "start" else self.invert(msg)
        self.task = asyncio.create_task(self._guarded(job))

    def cancel(self):
        self.stop_requested = True
        self.painter.cancel()
        if self.task is not None:
            self.task.cancel()

    async def call(self, fn, *args):
        """fn(*args) under the session's lock, in the step pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self.s.locked, fn, *args)

    async def _guarded(self, job):
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if not isinstance(e, (GanpriorError, ValueError)):  # a bug or a failing device
                log.exception("studio session %s", self.s.id)
            if not isinstance(e, SessionExpired):
                await self._abort()
            prefix = "" if isinstance(e, (GanpriorError, ValueError)) else "internal error: "
            await _send(self.ws, {"type": "error", "message": prefix + _one_line(e)})

    async def _abort(self):
        try:
            await self.call(self.s.abort)
        except SessionExpired:
            pass

    async def drag(self, msg: dict):
        s = self.s
        mask = _decode_mask(msg.get("mask"))
        await self.call(s.begin_drag, msg.get("handles"), msg.get("targets"), mask,
                        msg.get("settings"))
        await _send(self.ws, {"type": "started", "handles": [list(p) for p in s.handles],
                              "targets": [list(p) for p in s.targets]})
        reason = "stopped"

        def step():
            out = s.drag_step()
            return out, data_url(out["image"])
        while not self.stop_requested:
            out, image = await self.call(step)
            self.store.touch(s)
            await _send(self.ws, {
                "type": "step", "step": out["step"], "image": image,
                "points": [list(map(float, p)) for p in out["points"]],
                "targets": [list(map(float, p)) for p in out["targets"]],
                "distances": [float(d) for d in out["distances"]],
                "loss": float(out["loss"]), "ms": 1000 * float(out["seconds"])})
            if out["done"]:
                d = s.drag.radii["d"]
                reason = "reached" if all(x <= d for x in out["distances"]) else "max_steps"
                break
        state = await self.call(lambda: (s.end_drag(), session_state(s))[1])
        await _send(self.ws, {"type": "stopped", "reason": reason, "state": state})

    async def invert(self, msg: dict):
        s = self.s
        await self.call(s.begin_inversion, msg.get("steps", DEFAULT_INVERT_STEPS),
                        msg.get("tune_steps", 0))

        def step():
            out = s.inversion_step()
            return {**out, "image": None if out["image"] is None else data_url(out["image"])}
        while not self.stop_requested:
            out = await self.call(step)
            self.store.touch(s)
            await _send(self.ws, {"type": "progress", **out})
            if out["done"]:
                break
        await self.call(s.finish_inversion)
        if s.tune_steps:
            # one long job, not steps: run outside the step pool so that other sessions' steps
            # never queue behind it (Stop cannot interrupt it; a closed tab frees it after)
            await _send(self.ws, {"type": "tuning", "steps": s.tune_steps})
            await asyncio.get_running_loop().run_in_executor(None, s.locked, s.tune_photo)
        state = await self.call(session_state, s)
        await _send(self.ws, {"type": "inverted", "state": state})


class Painter:
    """A socket's paint edits, applied in the order sent. One task at a time takes every edit
    that has arrived, applies them in one step-pool job (under the session's lock) and
    synthesises the result once: edits sent while a synthesis runs wait for it and then go
    together, so only the newest canvas is synthesised and a fast brush never queues up
    syntheses."""

    def __init__(self, websocket: WebSocket, s: StudioSession, pool):
        self.ws, self.s, self.pool = websocket, s, pool
        self.queue: list[dict] = []
        self.task: asyncio.Task | None = None

    def submit(self, msg: dict) -> None:
        self.queue.append(msg)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.work())

    def cancel(self):
        self.queue = []
        if self.task is not None:
            self.task.cancel()

    async def work(self):
        loop = asyncio.get_running_loop()
        while self.queue:
            batch, self.queue = self.queue, []
            try:
                reply, errors = await loop.run_in_executor(self.pool, self.s.locked,
                                                           self.apply, batch)
            except SessionExpired:
                return
            except Exception as e:
                if not isinstance(e, (GanpriorError, ValueError)):
                    log.exception("studio session %s: paint", self.s.id)
                prefix = "" if isinstance(e, (GanpriorError, ValueError)) else "internal error: "
                await _send(self.ws, {"type": "error", "paint": True,
                                      "message": prefix + _one_line(e)})
                continue
            for err in errors:
                await _send(self.ws, err)
            await _send(self.ws, reply)

    def apply(self, batch: list[dict]) -> tuple[dict, list[dict]]:
        """Every edit of `batch` (a refused one is reported and skipped), then one synthesis
        when any changed the canvas. Runs under the session's lock."""
        p = self.s.painting()
        errors, changed = [], False
        for msg in batch:
            seq = msg.get("seq")
            try:
                paint.apply_edit(p, msg)
                changed = True
            except (GanpriorError, ValueError) as e:
                errors.append({"type": "error", "paint": True, "seq": seq,
                               "message": _one_line(e)})
            if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2 ** 53:
                p.seq = max(p.seq, seq)  # acknowledged, applied or refused
        if changed:
            paint.render(p)
        return {"type": "painted", **paint.view(p), "image": data_url(p.image)}, errors


def _decode_mask(value) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_MESSAGE:
        raise ValueError("mask must be base64 text (one byte per pixel) or null")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("mask is not valid base64")


async def _read_limited(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused (TooLarge) as soon as it passes `limit` bytes, so an
    oversize upload is never held in memory whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{what}: {int(declared):,} bytes is more than this server accepts "
                       f"({limit:,} bytes)")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"{what}: more than the {limit:,} bytes this server accepts")
    return bytes(data)


def _attachment(data: bytes, media_type: str, name: str) -> Response:
    return Response(data, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


async def _send(ws: WebSocket, msg: dict) -> None:
    """Send, ignoring a socket that has gone (its handler cleans up)."""
    try:
        await ws.send_text(json.dumps(msg))
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass


async def _close(ws: WebSocket) -> None:
    try:
        await ws.close()
    except (RuntimeError, OSError):
        pass
