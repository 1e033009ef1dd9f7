// The studio's Paint tab: paint a label map for a pix2pixHD model, place and erase instances,
// choose each instance's feature cluster; the server synthesises after every batch of edits.
// It shares the drag tab's session and socket (app.js: S, send, post, api, sessionPath, $).
// The server's maps are the truth: edits are sent as they happen (brush segments at most
// every FLUSH_MS), drawn here at once as a preview, and replaced by the server's maps when
// its reply comes (edits it has not applied yet are drawn again on top).
"use strict";

const PAINT_VIEW = 384;          // display px of the longer side
const FLUSH_MS = 40;             // brush points are sent at most this often

const P = {
  model: null, W: 0, H: 0, names: [], colours: [], things: new Set(),
  label: null, inst: null,       // Uint16Array W*H: the server's maps, with local previews
  server: null,                  // {label, inst} as the server last sent them
  instances: new Map(),          // id -> {id, class, thing, clusters, cluster, choice}
  cls: 0, selected: null, seq: 0, acked: 0, pending: [],
  stroke: 0, down: null, points: [], flushTimer: null, hover: null, busy: false,
  errorSeq: null, placing: null, features: false,
};

function paintSay(text, isError = false) {
  const m = $("paint-message");
  m.textContent = text || "";
  m.classList.toggle("error", isError);
}

function decodeU16(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const out = new Uint16Array(bytes.length / 2);
  for (let k = 0; k < out.length; k++) out[k] = bytes[2 * k] | (bytes[2 * k + 1] << 8);
  return out;
}

// --- the server's replies ---------------------------------------------------------------
function showCanvas(state) {
  if (state.classes) {  // a new canvas: its model's classes and size
    P.W = state.width; P.H = state.height;
    P.names = state.classes.names; P.colours = state.classes.colours;
    P.things = new Set(state.classes.things);
    P.model = state.model;
    P.pending = []; P.selected = null;
    P.features = state.features && state.has_clusters;
    if (P.cls >= P.names.length) P.cls = 0;
    buildPalette();
    const scale = PAINT_VIEW / Math.max(P.W, P.H);
    for (const id of ["label-layer", "paint-over"]) {
      $(id).width = Math.round(P.W * scale); $(id).height = Math.round(P.H * scale);
    }
    $("paint-empty").hidden = true;
  }
  P.server = {label: decodeU16(state.label), inst: decodeU16(state.inst)};
  P.instances = new Map(state.instances.map((e) => [e.id, e]));
  if (P.selected !== null && !P.instances.has(P.selected)) P.selected = null;
  P.acked = Math.max(P.acked, state.seq);
  P.pending = P.pending.filter((e) => e.seq > P.acked);
  redrawMaps();
  $("paint-view").src = state.image;
  const things = state.instances.filter((e) => e.thing).length;
  $("paint-readout").textContent = `${P.W}×${P.H} canvas · ${things} instances of things · ` +
    `synthesis ${state.ms.toFixed(0)} ms`;
  showSelected();
}

function redrawMaps() {
  P.label = P.server.label.slice();
  P.inst = P.server.inst.slice();
  for (const e of P.pending) if (e.op === "brush") previewBrush(e);
  drawLabels();
}

function onPaintMessage(m) {
  if (m.type === "painted") {
    if (P.errorSeq !== null && m.seq > P.errorSeq) { paintSay(""); P.errorSeq = null; }
    showCanvas(m);
    if (P.placing && m.seq >= P.placing.seq) {  // select the instance just placed
      const fresh = [...P.instances.keys()].filter((i) => !P.placing.before.has(i));
      if (fresh.length) { P.selected = fresh[0]; showSelected(); drawLabels(); }
      P.placing = null;
    }
  } else if (m.type === "error") {
    paintSay(m.message, true);
    P.errorSeq = typeof m.seq === "number" ? m.seq : P.seq;  // shown until a later edit lands
  }
}

// --- drawing ----------------------------------------------------------------------------
function drawLabels() {
  const ctx = $("label-layer").getContext("2d");
  if (!P.label) return;
  const small = document.createElement("canvas");
  small.width = P.W; small.height = P.H;
  const sctx = small.getContext("2d"), img = sctx.createImageData(P.W, P.H);
  for (let y = 0; y < P.H; y++) {
    for (let x = 0; x < P.W; x++) {
      const k = y * P.W + x, c = P.colours[P.label[k]] || [0, 0, 0], id = P.inst[k];
      // instance boundaries (a neighbour with another id) drawn darker, the selected one white
      const edge = (x + 1 < P.W && P.inst[k + 1] !== id) || (y + 1 < P.H && P.inst[k + P.W] !== id) ||
                   (x > 0 && P.inst[k - 1] !== id) || (y > 0 && P.inst[k - P.W] !== id);
      let rgb = c;
      if (edge && id === P.selected) rgb = [255, 255, 255];
      else if (edge && P.things.has(P.label[k])) rgb = c.map((v) => v * 0.55);
      img.data.set([rgb[0], rgb[1], rgb[2], 255], 4 * k);
    }
  }
  sctx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, ctx.canvas.width, ctx.canvas.height);
  drawOverlay();
}

function drawOverlay() {
  const layer = $("paint-over"), ctx = layer.getContext("2d");
  ctx.clearRect(0, 0, layer.width, layer.height);
  if (!P.W) return;
  const s = layer.width / P.W, at = (p) => [(p[0] + 0.5) * s, (p[1] + 0.5) * s];
  if (P.down && paintTool() === "instance" && P.hover) {  // the box being dragged
    const [x0, y0] = at(P.down), [x1, y1] = at(P.hover);
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 2; ctx.setLineDash([5, 4]);
    if (paintShape() === "ellipse") {
      ctx.beginPath();
      ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, Math.abs(x1 - x0) / 2 + s / 2,
                  Math.abs(y1 - y0) / 2 + s / 2, 0, 0, 2 * Math.PI);
      ctx.stroke();
    } else {
      ctx.strokeRect(Math.min(x0, x1) - s / 2, Math.min(y0, y1) - s / 2,
                     Math.abs(x1 - x0) + s, Math.abs(y1 - y0) + s);
    }
    ctx.setLineDash([]);
  } else if (P.hover && paintTool() === "brush") {  // the brush outline under the pointer
    const [x, y] = at(P.hover), r = (Number($("paint-brush").value) + 0.5) * s;
    ctx.strokeStyle = "rgba(255,255,255,.9)"; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke();
  }
}

// the server's stroke mask (synthesis/editing.py stroke_mask): pixel centres within r of the
// polyline
function previewBrush(e) {
  const pts = e.points, r = e.radius, seg = pts.length > 1 ? pts.length - 1 : 1;
  const id = P.things.has(e.class) ? e.class * 1000 + 999 : e.class;  // a stand-in id
  for (let n = 0; n < seg; n++) {
    const a = pts[n], b = pts[Math.min(n + 1, pts.length - 1)];
    const dx = b[0] - a[0], dy = b[1] - a[1], len2 = dx * dx + dy * dy;
    for (let y = Math.max(0, Math.floor(Math.min(a[1], b[1]) - r));
         y <= Math.min(P.H - 1, Math.ceil(Math.max(a[1], b[1]) + r)); y++) {
      for (let x = Math.max(0, Math.floor(Math.min(a[0], b[0]) - r));
           x <= Math.min(P.W - 1, Math.ceil(Math.max(a[0], b[0]) + r)); x++) {
        const px = x - a[0], py = y - a[1];
        const t = len2 ? Math.min(1, Math.max(0, (px * dx + py * dy) / len2)) : 0;
        if ((px - t * dx) ** 2 + (py - t * dy) ** 2 <= r * r) {
          P.label[y * P.W + x] = e.class; P.inst[y * P.W + x] = id;
        }
      }
    }
  }
}

// --- palette and instance features --------------------------------------------------------
function buildPalette() {
  const box = $("palette");
  box.textContent = "";
  P.names.forEach((name, c) => {
    const b = document.createElement("button");
    b.type = "button"; b.dataset.cls = c; b.setAttribute("role", "radio");
    b.title = `class ${c}: ${name}${P.things.has(c) ? " (thing: has instances)" : " (stuff)"}`;
    const chip = document.createElement("span");
    chip.className = "chip"; chip.style.background = `rgb(${P.colours[c].join(",")})`;
    const text = document.createElement("span");
    text.textContent = name;
    b.append(chip, text);
    if (P.things.has(c)) {
      const t = document.createElement("span");
      t.className = "thing"; t.textContent = "thing";
      b.append(t);
    }
    b.onclick = () => { P.cls = c; markPalette(); };
    box.append(b);
  });
  markPalette();
}

function markPalette() {
  for (const b of $("palette").children) {
    b.setAttribute("aria-checked", String(Number(b.dataset.cls) === P.cls));
  }
}

function showSelected() {
  const sel = $("paint-cluster"), e = P.instances.get(P.selected);
  sel.textContent = "";
  if (!e) {
    $("paint-selected").textContent = "select an instance (Select tool, or place one)";
    sel.disabled = true;
    return;
  }
  const what = e.clusters ? `cluster ${e.cluster} of ${e.clusters}` +
    (e.choice === "random" ? " (drawn at random)" : e.choice === "default" ? " (default)" : "")
    : "no feature clusters for this class";
  $("paint-selected").textContent = `instance ${e.id}: ${P.names[e.class]}, ${what}`;
  sel.add(new Option("default (cluster 0)", "default"));
  sel.add(new Option("random", "random"));
  for (let k = 0; k < e.clusters; k++) sel.add(new Option(`cluster ${k}`, String(k)));
  sel.value = e.choice === "picked" ? String(e.cluster) : e.choice;
  sel.disabled = !e.clusters || !S.sid;
}

// --- edits ----------------------------------------------------------------------------------
function sendEdit(e) {
  e.seq = ++P.seq;
  P.pending.push(e);
  try {
    send({type: "paint", ...e});
  } catch (err) { paintSay(err.message, true); }
  return e;
}

function flushBrush() {
  P.flushTimer = null;
  if (P.points.length < 2 && !P.points.fresh) return;
  const e = sendEdit({op: "brush", class: P.cls, radius: Number($("paint-brush").value),
                      points: P.points.slice(), stroke: P.stroke});
  previewBrush(e);
  drawLabels();
  P.points = [P.points[P.points.length - 1]];  // the next segment starts where this ended
}

function pixelOf(ev) {
  const r = $("paint-over").getBoundingClientRect();
  const clamp = (v, n) => Math.min(n - 1, Math.max(0, v));
  const x = clamp(((ev.clientX - r.left) / r.width) * P.W - 0.5, P.W);
  const y = clamp(((ev.clientY - r.top) / r.height) * P.H - 0.5, P.H);
  return [Math.round(x * 100) / 100, Math.round(y * 100) / 100];
}
const paintTool = () => document.querySelector("input[name=paint-tool]:checked").value;
const paintShape = () => document.querySelector("input[name=paint-shape]:checked").value;

function onPaintDown(ev) {
  if (!P.W || !S.sid || ev.button !== 0) return;
  ev.preventDefault();
  $("paint-over").setPointerCapture(ev.pointerId);
  const p = pixelOf(ev), tool = paintTool();
  P.down = p; P.hover = p;
  if (tool === "brush") {
    P.stroke += 1;
    P.points = [p]; P.points.fresh = true;
    flushBrush();
  } else if (tool === "erase") {
    P.points = [p];
  } else if (tool === "select") {
    const id = P.inst[Math.round(p[1]) * P.W + Math.round(p[0])];
    P.selected = P.instances.has(id) ? id : null;
    showSelected(); drawLabels();
  }
}

function onPaintMove(ev) {
  if (!P.W) return;
  const p = pixelOf(ev);
  P.hover = p;
  if (P.down && paintTool() === "brush") {
    P.points.push(p);
    if (!P.flushTimer) P.flushTimer = setTimeout(flushBrush, FLUSH_MS);
  } else if (P.down && paintTool() === "erase") {
    P.points.push(p);
  }
  drawOverlay();
}

function onPaintUp(ev) {
  if (!P.down) return;
  const tool = paintTool(), start = P.down, end = P.W ? pixelOf(ev) : start;
  P.down = null;
  if (tool === "brush") {
    clearTimeout(P.flushTimer);
    flushBrush();
  } else if (tool === "instance") {
    let box = [start[0], start[1], end[0], end[1]];
    if (Math.abs(end[0] - start[0]) < 1 && Math.abs(end[1] - start[1]) < 1) {
      const half = Math.max(1, Math.round(Math.min(P.W, P.H) / 16));  // a click: a default size
      const clamp = (v, n) => Math.min(n - 1, Math.max(0, v));
      box = [clamp(start[0] - half, P.W), clamp(start[1] - half, P.H),
             clamp(start[0] + half, P.W), clamp(start[1] + half, P.H)];
    }
    if (!P.things.has(P.cls)) {
      paintSay(`${P.names[P.cls]} is a stuff class: choose a thing class for an instance ` +
               "(or paint stuff with the brush)", true);
    } else {
      const e = sendEdit({op: "instance", class: P.cls, box: box.map(Math.round),
                          shape: paintShape()});
      P.placing = {seq: e.seq, before: new Set(P.instances.keys())};
    }
  } else if (tool === "erase") {
    const seen = new Set(), points = [];
    for (const p of P.points) {  // one point per instance touched
      const id = P.inst[Math.round(p[1]) * P.W + Math.round(p[0])];
      if (!seen.has(id)) { seen.add(id); points.push(p.map(Math.round)); }
    }
    if (points.length) sendEdit({op: "erase", points: points.slice(0, 512)});
  }
  P.points = [];
  drawOverlay();
}

function setCluster(instance, cluster) {
  sendEdit({op: "cluster", instance, cluster});
}

// --- canvas, files, buttons --------------------------------------------------------------
async function newCanvas(start) {
  paintSay(start === "scene" ? "drawing the scene…" : "making a blank canvas…");
  const fill = P.names.length && !P.things.has(P.cls) ? P.cls : null;
  const state = await post(sessionPath("paint"), {
    model: $("paint-model").value, start, seed: Number($("paint-seed").value),
    ...(start === "blank" && fill !== null ? {fill} : {})});
  const first = !P.names.length;
  showCanvas(state);
  if (first) {  // start with road where there is one, else the first stuff class
    const {names, things} = state.classes, road = names.indexOf("road");
    P.cls = road >= 0 ? road : Math.max(0, names.findIndex((_, c) => !things.includes(c)));
    markPalette();
  }
  paintSay(start === "scene" ? `scene ${state.origin.seed}: paint on the label map` :
           "blank canvas: paint on the label map");
}

async function openMap(input, kind) {
  const file = input.files[0];
  if (!file) return;
  paintSay(`opening ${file.name}…`);
  const state = await api(sessionPath(`paint/${kind}`), {
    method: "POST", headers: {"Content-Type": "image/png"}, body: file});
  P.pending = [];
  showCanvas(state);
  paintSay(`${file.name} opened`);
  input.value = "";
}

async function paintGuarded(fn) {
  P.busy = true; updatePaint();
  try { await fn(); } catch (e) { paintSay(e.message, true); } finally { P.busy = false; updatePaint(); }
}

function updatePaint() {
  const connected = !!S.sid, canvas = P.W > 0, idle = connected && !P.busy;
  const model = $("paint-model").value;
  $("paint-scene").disabled = !idle || !model;
  $("paint-blank").disabled = !idle || !model;
  for (const id of ["paint-random-all", "paint-default-all"]) {
    $(id).disabled = !idle || !canvas || !P.features;
  }
  for (const id of ["paint-open-label", "paint-open-inst"]) $(id).disabled = !idle || !canvas;
  for (const [id, file] of [["dl-label", "label.png"], ["dl-instances", "instances.png"],
                            ["dl-paint-image", "image.png"]]) {
    $(id).classList.toggle("disabled", !connected || !canvas);
    if (connected) $(id).href = sessionPath(`paint/${file}`);
  }
  $("paint-brush-row").hidden = paintTool() !== "brush";
  $("paint-shape-row").hidden = paintTool() !== "instance";
  if (!connected) $("paint-cluster").disabled = true;
}

function setPaintModels(models, defaults) {
  const select = $("paint-model");
  select.textContent = "";
  const mine = models.filter((m) => m.kind === "paint");
  for (const m of mine) {
    const o = new Option(m.available === "ok" ? m.label : `${m.label} (unavailable)`, m.id);
    o.disabled = m.available !== "ok";
    select.add(o);
  }
  if (!mine.length) {
    select.add(new Option("no pix2pixHD model (start the studio with --models DIR)", ""));
    select.disabled = true;
  } else if (mine.some((m) => m.id === defaults.paint_model && m.available === "ok")) {
    select.value = defaults.paint_model;
  }
  updatePaint();
}

function showTab(name) {
  const paint = name === "paint";
  $("drag-tab").hidden = paint;
  $("paint-tab").hidden = !paint;
  $("tab-drag").setAttribute("aria-selected", String(!paint));
  $("tab-paint").setAttribute("aria-selected", String(paint));
  $("subtitle").textContent = paint ? "paint label maps for pix2pixHD" :
    "drag points on GAN images (DragGAN)";
  if (location.hash !== (paint ? "#paint" : "")) {
    history.replaceState(null, "", paint ? "#paint" : location.pathname);
  }
}

function wirePaint() {
  $("tab-drag").onclick = () => showTab("drag");
  $("tab-paint").onclick = () => showTab("paint");
  $("paint-scene").onclick = () => paintGuarded(() => newCanvas("scene"));
  $("paint-blank").onclick = () => paintGuarded(() => newCanvas("blank"));
  $("paint-random-seed").onclick = () => { $("paint-seed").value = Math.floor(Math.random() * 100000); };
  $("paint-brush").oninput = () => { $("paint-brush-value").textContent = $("paint-brush").value; };
  $("paint-cluster").onchange = () => {
    const v = $("paint-cluster").value;
    if (P.selected !== null) setCluster(P.selected, v === "default" || v === "random" ? v : Number(v));
  };
  $("paint-random-all").onclick = () => setCluster("all", "random");
  $("paint-default-all").onclick = () => setCluster("all", "default");
  $("paint-open-label").onchange = () => paintGuarded(() => openMap($("paint-open-label"), "label"));
  $("paint-open-inst").onchange = () => paintGuarded(() => openMap($("paint-open-inst"), "instances"));
  for (const r of document.querySelectorAll("input[name=paint-tool]")) {
    r.onchange = () => { updatePaint(); drawOverlay(); };
  }
  const layer = $("paint-over");
  layer.addEventListener("pointerdown", onPaintDown);
  layer.addEventListener("pointermove", onPaintMove);
  layer.addEventListener("pointerup", onPaintUp);
  layer.addEventListener("pointercancel", onPaintUp);
  layer.addEventListener("pointerleave", () => { P.hover = null; drawOverlay(); });
  for (const id of ["dl-label", "dl-instances", "dl-paint-image"]) {
    $(id).addEventListener("click", (ev) => { if (!S.sid || !P.W) ev.preventDefault(); });
  }
  if (location.hash === "#paint") showTab("paint");
}

window.Paint = {onMessage: onPaintMessage, update: updatePaint, setModels: setPaintModels, P};
wirePaint();
updatePaint();
