// ganprior studio front end: one session per tab, every drag step streamed over a WebSocket
// (the Paint tab, paint.js, shares the session and the socket).
// Points are kept in image pixels (x right, y down, 0..R-1, integer = pixel centre); the
// 512 px canvases only draw them. No framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const CANVAS = 512;
const PICK_RADIUS = 12;         // display px within which a press grabs an existing point

const S = {
  sid: null, socket: null, limits: {},
  R: 0,                         // image resolution (0: no image yet)
  pairs: [],                    // [{h: [x, y], t: [x, y] | null}]
  actions: [],                  // undo stack of the page: "point" edits, "drag" runs
  mask: null, hasMask: false,   // Uint8Array R*R, 1 = flexible
  running: null,                // "drag" | "invert" | null
  grab: null, painting: false, brushAt: null,
  pending: false,               // an HTTP request is on its way
};

// --- server calls ------------------------------------------------------------------------
async function api(path, options = {}) {
  const res = await fetch(path, options);
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    if (res.status === 404 && path.startsWith("/api/sessions/")) sessionLost(body.error);
    throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  }
  return body;
}
const post = (path, body) => api(path, {
  method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {}),
});
const sessionPath = (tail) => `/api/sessions/${S.sid}/${tail}`;

function say(text, isError = false) {
  const m = $("message");
  m.textContent = text || "";
  m.classList.toggle("error", isError);
}

async function guarded(fn) {
  S.pending = true;  // no second request while one is on its way (e.g. a model loading)
  updateButtons();
  try { await fn(); } catch (e) { say(e.message, true); } finally { S.pending = false; updateButtons(); }
}

// --- session and socket ------------------------------------------------------------------
async function openSession() {
  const {session} = await post("/api/sessions");
  S.sid = session;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${proto}://${location.host}/api/sessions/${session}/ws`);
  S.socket = socket;
  socket.onopen = () => setConnection("connected", "ok");
  socket.onclose = () => { if (S.socket === socket) sessionLost("connection closed"); };
  socket.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  for (const [id, file] of [["dl-image", "image.png"], ["dl-latent", "latent.safetensors"],
                            ["dl-points", "points.json"]]) $(id).href = sessionPath(file);
}

function setConnection(text, kind) {
  const c = $("connection");
  c.textContent = text;
  c.className = "pill " + (kind || "");
}

function sessionLost(why) {
  S.socket = null; S.sid = null; S.running = null;
  setConnection("session closed", "bad");
  say(`${why || "session closed"}: reload the page to start again`, true);
  updateButtons();
}

function send(msg) {
  if (!S.socket || S.socket.readyState !== WebSocket.OPEN) throw new Error("not connected");
  S.socket.send(JSON.stringify(msg));
}

function onMessage(m) {
  if (m.type === "painted" || m.paint) return Paint.onMessage(m);  // the Paint tab's (paint.js)
  if (m.type === "step") {
    $("view").src = m.image;
    m.points.forEach((p, i) => {
      const pair = S.pairs[i];
      if (!pair) return;
      pair.h = p;
      (pair.trail = pair.trail || []).push(p);
    });
    drawPoints();
    const d = m.distances, mean = d.reduce((a, b) => a + b, 0) / d.length;
    $("readout").textContent = `step ${m.step + 1} · mean distance ${mean.toFixed(2)} px` +
      ` (max ${Math.max(...d).toFixed(2)}) · loss ${m.loss.toFixed(4)} · ${m.ms.toFixed(0)} ms/step`;
  } else if (m.type === "started") {
    S.running = "drag"; S.actions.push("drag"); updateButtons();
    say("dragging… press Stop to keep the current result");
  } else if (m.type === "stopped") {
    S.running = null;
    showState(m.state, true);
    say({reached: "done: every handle reached its target", max_steps: "done: the step limit " +
         "was reached (press Start to go on)", stopped: "stopped"}[m.reason] || m.reason);
  } else if (m.type === "progress") {
    if (m.image) { $("view").src = m.image; $("empty").hidden = true; }
    $("invert-progress").value = m.step / m.steps;
    $("invert-text").textContent = `inverting: step ${m.step} of ${m.steps}, ` +
      `PSNR ${m.psnr.toFixed(2)} dB`;
  } else if (m.type === "tuning") {
    $("invert-progress").removeAttribute("value");  // indeterminate: one long job
    $("invert-text").textContent = `tuning the generator on the photo (PTI, ${m.steps} steps)…`;
    say("tuning… (Stop cannot interrupt the tuning)");
  } else if (m.type === "inverted") {
    S.running = null;
    S.actions = [];
    clearMask();
    showState(m.state);
    const o = m.state.origin;
    $("invert-progress").value = 1;
    $("invert-text").textContent = `inverted (${o.loss}): PSNR ${o.psnr} dB after ` +
      `${o.inversion_steps} steps` +
      (o.tuning_steps ? `; tuned (PTI, ${o.tuning_steps} steps): ${o.tuned_psnr} dB` : "");
    say("photo inverted: place points and press Start");
  } else if (m.type === "error") {
    if (m.expired) return sessionLost(m.message);
    if (S.running === "invert") $("invert-progress").hidden = true;
    S.running = null;
    say(m.message, true);
  }
  updateButtons();
}

// --- image and points ---------------------------------------------------------------------
function showState(state, keepPoints = false) {
  const newSize = state.resolution !== S.R;
  S.R = state.resolution;
  $("view").src = state.image;
  $("empty").hidden = true;
  if (newSize) clearMask();
  if (!keepPoints || state.handles.length !== S.pairs.filter((p) => p.t).length) {
    S.pairs = state.handles.map((h, i) => ({h, t: state.targets[i]}));
  } else {
    S.pairs = S.pairs.filter((p) => p.t).map((p, i) => ({h: state.handles[i], t: state.targets[i],
                                                         trail: p.trail}));
  }
  drawPoints();
  if (state.steps_run === 0) {
    const what = state.origin.kind === "photo" ? "photo inverted into" : `seed ${state.origin.seed} of`;
    $("readout").textContent = `${S.R}×${S.R} image: ${what} ${state.model}`;
  }
}

// display position (CSS px in the 512 px canvas) <-> image pixel coordinates
function toImage(ev) {
  const r = $("points-layer").getBoundingClientRect();
  const clamp = (v) => Math.min(S.R - 1, Math.max(0, v));
  const x = clamp(((ev.clientX - r.left) / r.width) * S.R - 0.5);
  const y = clamp(((ev.clientY - r.top) / r.height) * S.R - 0.5);
  return [Math.round(x * 100) / 100, Math.round(y * 100) / 100];
}
const toCanvas = (p) => [(p[0] + 0.5) * CANVAS / S.R, (p[1] + 0.5) * CANVAS / S.R];

function drawPoints() {
  const ctx = $("points-layer").getContext("2d");
  ctx.clearRect(0, 0, CANVAS, CANVAS);
  if (!S.R) return;
  for (const {h, t, trail} of S.pairs) {
    const [hx, hy] = toCanvas(h);
    if (trail && trail.length > 1) {  // where the handle has been during this drag
      ctx.strokeStyle = "rgba(229,57,59,.85)"; ctx.lineWidth = 2;
      ctx.beginPath();
      trail.forEach((p, k) => { const [x, y] = toCanvas(p); k ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
      ctx.stroke();
      const [sx, sy] = toCanvas(trail[0]);
      ctx.beginPath(); ctx.arc(sx, sy, 4, 0, 2 * Math.PI); ctx.stroke();
    }
    if (t) {
      const [tx, ty] = toCanvas(t);
      arrow(ctx, hx, hy, tx, ty);
      dot(ctx, tx, ty, "#2f6fed");
    }
    dot(ctx, hx, hy, "#e5393b");
  }
  if (S.brushAt && tool() === "mask") {  // the brush outline under the pointer
    const [bx, by] = toCanvas(S.brushAt), r = Number($("brush").value) * CANVAS / S.R;
    ctx.strokeStyle = "rgba(255,255,255,.9)"; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.arc(bx, by, r, 0, 2 * Math.PI); ctx.stroke();
  }
}

function arrow(ctx, x0, y0, x1, y1) {
  const len = Math.hypot(x1 - x0, y1 - y0);
  if (len < 1) return;
  const ux = (x1 - x0) / len, uy = (y1 - y0) / len, ex = x1 - ux * 9, ey = y1 - uy * 9;
  ctx.strokeStyle = "rgba(255,255,255,.95)"; ctx.lineWidth = 2.5;
  ctx.setLineDash([6, 4]);
  ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(ex, ey); ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = "rgba(255,255,255,.95)";
  ctx.beginPath(); ctx.moveTo(ex + uy * 6 - ux * 8, ey - ux * 6 - uy * 8);
  ctx.lineTo(ex, ey); ctx.lineTo(ex - uy * 6 - ux * 8, ey + ux * 6 - uy * 8); ctx.fill();
}

function dot(ctx, x, y, colour) {
  ctx.beginPath(); ctx.arc(x, y, 7, 0, 2 * Math.PI);
  ctx.fillStyle = colour; ctx.fill();
  ctx.lineWidth = 2; ctx.strokeStyle = "#fff"; ctx.stroke();
}

function nearestPoint(ev) {
  const r = $("points-layer").getBoundingClientRect();
  const cx = (ev.clientX - r.left) * CANVAS / r.width, cy = (ev.clientY - r.top) * CANVAS / r.height;
  let best = null, bestD = PICK_RADIUS * CANVAS / r.width;
  S.pairs.forEach((pair, i) => {
    for (const key of ["t", "h"]) {
      if (!pair[key]) continue;
      const [x, y] = toCanvas(pair[key]);
      const d = Math.hypot(x - cx, y - cy);
      if (d <= bestD) { best = {i, key}; bestD = d; }
    }
  });
  return best;
}

function tool() { return document.querySelector("input[name=tool]:checked").value; }

function onPointerDown(ev) {
  if (!S.R || S.running || ev.button !== 0) return;
  ev.preventDefault();
  $("points-layer").setPointerCapture(ev.pointerId);
  if (tool() === "mask") { S.painting = true; paint(ev); return; }
  S.grab = nearestPoint(ev);
  if (S.grab) return;
  const p = toImage(ev), last = S.pairs[S.pairs.length - 1];
  if (last && !last.t) last.t = p; else S.pairs.push({h: p, t: null});
  S.actions.push("point");
  drawPoints(); updateButtons();
}

function onPointerMove(ev) {
  if (S.R && tool() === "mask") { S.brushAt = toImage(ev); drawPoints(); }
  if (S.painting) return paint(ev);
  if (!S.grab) return;
  S.pairs[S.grab.i][S.grab.key] = toImage(ev);
  drawPoints();
}

function onPointerUp() { S.grab = null; S.painting = false; }

function onPointerLeave() { S.brushAt = null; drawPoints(); }

function onContextMenu(ev) {
  ev.preventDefault();
  if (S.running) return;
  const hit = nearestPoint(ev);
  if (hit) { S.pairs.splice(hit.i, 1); drawPoints(); updateButtons(); }
}

// --- mask ----------------------------------------------------------------------------------
function paint(ev) {
  const value = Number(document.querySelector("input[name=paint]:checked").value);
  if (!S.hasMask) {  // painting the flexible area starts from all fixed, and the reverse
    S.mask = new Uint8Array(S.R * S.R).fill(value ? 0 : 1);
    S.hasMask = true;
  }
  const [x, y] = toImage(ev), r = Number($("brush").value);
  for (let j = Math.max(0, Math.floor(y - r)); j <= Math.min(S.R - 1, Math.ceil(y + r)); j++) {
    for (let i = Math.max(0, Math.floor(x - r)); i <= Math.min(S.R - 1, Math.ceil(x + r)); i++) {
      if ((i - x) ** 2 + (j - y) ** 2 <= r * r) S.mask[j * S.R + i] = value;
    }
  }
  drawMask();
}

function clearMask() { S.mask = null; S.hasMask = false; drawMask(); }

function drawMask() {
  const ctx = $("mask-layer").getContext("2d");
  ctx.clearRect(0, 0, CANVAS, CANVAS);
  if (!S.hasMask) return;
  const small = document.createElement("canvas");
  small.width = small.height = S.R;
  const sctx = small.getContext("2d"), img = sctx.createImageData(S.R, S.R);
  for (let k = 0; k < S.mask.length; k++) {
    if (S.mask[k]) continue;  // flexible: shown as is; fixed: shaded
    img.data.set([10, 14, 30, 150], 4 * k);
  }
  sctx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, CANVAS, CANVAS);
}

function maskBase64() {
  if (!S.hasMask) return null;
  let text = "";
  for (let k = 0; k < S.mask.length; k += 8192) {
    text += String.fromCharCode.apply(null, S.mask.subarray(k, k + 8192));
  }
  return btoa(text);
}

// --- buttons -------------------------------------------------------------------------------
function updateButtons() {
  const connected = !!S.sid, busy = !!S.running || S.pending, image = S.R > 0;
  const complete = S.pairs.some((p) => p.t);
  $("generate").disabled = !connected || busy;
  $("invert").disabled = !connected || busy;
  $("start").disabled = !connected || busy || !image || !complete;
  $("stop").disabled = !S.running;
  $("undo").disabled = !connected || busy || !S.actions.length;
  $("reset").disabled = !connected || busy || !image;
  $("clear-points").disabled = busy || !S.pairs.length;
  $("clear-mask").disabled = busy || !S.hasMask;
  for (const id of ["dl-image", "dl-latent", "dl-points"]) {
    $(id).classList.toggle("disabled", !connected || busy || !image);
  }
  $("brush-options").hidden = tool() !== "mask";
  if (window.Paint) Paint.update();
}

async function loadModels() {
  const {models, limits, defaults} = await api("/api/models");
  S.limits = limits;
  const select = $("model");
  if (window.Paint) Paint.setModels(models, defaults);
  for (const m of models.filter((m) => m.kind !== "paint")) {  // pix2pixHD: the Paint tab
    const o = new Option(m.available === "ok" ? m.label : `${m.label} (unavailable)`, m.id);
    o.disabled = m.available !== "ok";
    o.title = m.available === "ok" ? "" : m.available;
    select.add(o);
  }
  if (models.some((m) => m.id === defaults.model)) select.value = defaults.model;
  $("invert-steps").value = defaults.invert_steps;
}

async function generate() {
  say("generating…");
  const state = await post(sessionPath("generate"), {
    model: $("model").value, seed: Number($("seed").value), trunc: Number($("trunc").value)});
  S.actions = [];
  clearMask();
  showState(state);
  say("place a handle (click) and its target (click again), then press Start");
  updateButtons();
}

async function invertPhoto() {
  const file = $("photo").files[0];
  if (!file) throw new Error("choose a photo file first");
  if (file.size > S.limits.upload_bytes) {
    throw new Error(`the photo is ${(file.size / 2 ** 20).toFixed(1)} MiB; this server accepts ` +
                    `up to ${(S.limits.upload_bytes / 2 ** 20).toFixed(1)} MiB`);
  }
  say("uploading…");
  const {photo} = await api(sessionPath(`photo?model=${encodeURIComponent($("model").value)}`), {
    method: "POST", headers: {"Content-Type": file.type || "application/octet-stream"}, body: file});
  $("photo-target").src = photo;  // what the inversion fits: the centre square, resized
  $("photo-target").hidden = false;
  $("invert-progress").hidden = false;
  $("invert-progress").value = 0;
  S.running = "invert";
  send({type: "invert", steps: Number($("invert-steps").value),
        tune_steps: Number($("tune-steps").value)});
  say("inverting the photo… (Stop keeps the best fit so far)");
  updateButtons();
}

function start() {
  S.pairs = S.pairs.filter((p) => p.t);  // a handle still waiting for its target is dropped
  for (const p of S.pairs) p.trail = [];
  drawPoints();
  send({type: "start", handles: S.pairs.map((p) => p.h), targets: S.pairs.map((p) => p.t),
        mask: maskBase64(), settings: {
          lr: Number($("lr").value), lambda_mask: Number($("lambda").value),
          tracking: $("tracking").value, max_steps: Number($("max-steps").value)}});
  S.running = "drag";  // until "started" or "error" comes back
  updateButtons();
}

async function undo() {
  const last = S.actions.pop();
  if (last === "point") {  // the newest point: a target, or a handle still without one
    const pair = S.pairs[S.pairs.length - 1];
    if (pair && pair.t) pair.t = null; else S.pairs.pop();
    drawPoints();
  } else if (last === "drag") {
    showState(await post(sessionPath("undo")));
    say("undone: back to the image and points before the last drag");
  }
  updateButtons();
}

async function reset() {
  showState(await post(sessionPath("reset")));
  S.actions = [];
  clearMask();
  say("reset to the starting image");
  updateButtons();
}

function wire() {
  $("generate").onclick = () => guarded(generate);
  $("invert").onclick = () => guarded(invertPhoto);
  $("start").onclick = () => guarded(start);
  $("stop").onclick = () => guarded(async () => send({type: "stop"}));
  $("undo").onclick = () => guarded(undo);
  $("reset").onclick = () => guarded(reset);
  $("random-seed").onclick = () => { $("seed").value = Math.floor(Math.random() * 100000); };
  $("clear-points").onclick = () => { S.pairs = []; S.actions = S.actions.filter((a) => a !== "point");
                                      drawPoints(); updateButtons(); };
  $("clear-mask").onclick = () => { clearMask(); updateButtons(); };
  $("trunc").oninput = () => { $("trunc-value").textContent = Number($("trunc").value).toFixed(2); };
  $("brush").oninput = () => { $("brush-value").textContent = $("brush").value; };
  for (const r of document.querySelectorAll("input[name=tool]")) r.onchange = updateButtons;
  const layer = $("points-layer");
  layer.addEventListener("pointerdown", onPointerDown);
  layer.addEventListener("pointermove", onPointerMove);
  layer.addEventListener("pointerup", onPointerUp);
  layer.addEventListener("pointercancel", onPointerUp);
  layer.addEventListener("pointerleave", onPointerLeave);
  layer.addEventListener("contextmenu", onContextMenu);
  for (const id of ["dl-image", "dl-latent", "dl-points"]) {
    $(id).addEventListener("click", (ev) => { if (!S.sid || !S.R) ev.preventDefault(); });
  }
  window.addEventListener("pagehide", () => { if (S.socket) S.socket.close(); });
}

wire();
updateButtons();
guarded(async () => { await loadModels(); await openSession(); updateButtons(); });
