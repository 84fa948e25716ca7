// AffectLens dashboard: plain JavaScript, no build step, no external resources.
// Talks to the same server: POST /v1/images:analyze, POST /v1/videos + GET /v1/jobs/{id},
// and the WebSocket /v1/stream (protocol 1, see docs/service.md).
"use strict";

const $ = (id) => document.getElementById(id);

// The one palette: a copy of the "colors" object of src/affectlens/palette.json (tests/test_labels.py checks
// that they are equal). Labels outside it (a custom model's classes) get fallbackColor: the same
// function as affectlens.labels.fallback_color and the web SDK's, so every part shows one colour per label.
const COLORS = {"angry": "#e53935", "disgust": "#7cb342", "fear": "#8e24aa", "happy": "#fbc02d", "neutral": "#9e9e9e", "sad": "#1e88e5", "surprise": "#fb8c00", "contempt": "#00897b"};
const ORDER = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt"];
const OTHER_COLOR = "#bdbdbd";
function fallbackColor(label) {
  // FNV-1a (32 bit) of the UTF-8 bytes picks the hue; HSL saturation 0.6, lightness 0.45.
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(String(label))) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  const hue = h % 360, c = (1 - Math.abs(2 * 0.45 - 1)) * 0.6, x = c * (1 - Math.abs(((hue / 60) % 2) - 1));
  const m = 0.45 - c / 2;
  const rgb = [[c, x, 0], [x, c, 0], [0, c, x], [0, x, c], [x, 0, c], [c, 0, x]][Math.floor(hue / 60)];
  return "#" + rgb.map((v) => Math.floor((v + m) * 255 + 0.5).toString(16).padStart(2, "0")).join("");
}
function colorFor(label) {
  if (!label || label === "unreliable") return OTHER_COLOR;
  return COLORS[label] || fallbackColor(label);
}

// ------------------------------------------------------------------ consent gate
const gated = ["image-input", "video-input", "cam-start"];

function consentGiven() {
  return $("consent-ack").checked && $("consent-basis").value !== "";
}

function updateGate() {
  const ok = consentGiven();
  for (const id of gated) $(id).disabled = !ok;
  if (live.running) $("cam-start").disabled = true;
  $("consent-state").textContent = ok
    ? "Consent acknowledged (basis: " + $("consent-basis").value + "). Analysis is enabled."
    : "Analysis is disabled until the notice is acknowledged and a basis is chosen.";
  $("consent-state").className = ok ? "ok" : "muted";
  if (!ok && live.running) stopCamera("stopped: consent withdrawn");
}

function authHeaders() {
  const h = { "X-Consent": $("consent-basis").value };
  const key = $("api-key").value.trim();
  if (key) h["X-API-Key"] = key;
  return h;
}

async function errorText(resp) {
  // The error as the server sent it: status, code and message (JSON error body), else the start of the text.
  const text = await resp.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    const err = body.error || body;
    const msg = err.message || err.detail || JSON.stringify(err);
    return resp.status + " " + (err.code || resp.statusText || "error") + ": " + msg;
  } catch (e) {
    return "HTTP " + resp.status + " " + (resp.statusText || "") + (text ? ": " + text.slice(0, 300) : "");
  }
}

async function loadHealth() {
  const select = $("consent-basis");
  let bases = ["subject-consented", "research-protocol", "contract"];
  try {
    const h = await (await fetch("/healthz")).json();
    if (h.consent_bases && h.consent_bases.length) bases = h.consent_bases;
    $("server-status").textContent = "server " + h.status + " · model " + h.model +
      (h.open_mode ? " · open mode (no API key needed)" : " · API key required");
  } catch (e) {
    $("server-status").textContent = "server unreachable";
  }
  for (const b of bases) {
    const opt = document.createElement("option");
    opt.value = b;
    opt.textContent = b;
    select.appendChild(opt);
  }
}

// ------------------------------------------------------------------ drawing helpers
// Labels and bar panels never cover a face: each goes to the first free place (faces and what was
// already drawn are "taken"); a bar panel with no free place is left out (groups).
function overlaps(a, b) { return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]; }

function place(w, h, candidates, taken, W, H) {
  for (const [cx, cy] of candidates) {
    const x = Math.min(Math.max(0, cx), Math.max(0, W - w));
    const y = Math.min(Math.max(0, cy), Math.max(0, H - h));
    const r = [x, y, x + w, y + h];
    if (!taken.some((t) => overlaps(r, t))) return r;
  }
  return null;
}

function textColorFor(hex) {
  // Black or white, whichever contrasts more with the label colour (WCAG relative luminance).
  const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
    .map((v) => (v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4)));
  const lum = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  return (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) ? "#000" : "#fff";
}

function drawFaceBox(ctx, face, label, scale, color, taken) {
  taken = taken || [];
  const [x1, y1, x2, y2] = face.bbox;
  ctx.lineWidth = Math.max(2, 3 * scale);
  ctx.strokeStyle = color;
  ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  const fontPx = Math.max(12, Math.round(16 * scale));
  ctx.font = fontPx + "px sans-serif";
  const w = ctx.measureText(label).width + 8, h = fontPx + 6;
  const own = taken.findIndex((t) => t[0] === x1 && t[1] === y1 && t[2] === x2 && t[3] === y2);
  const others = taken.filter((_, i) => i !== own);
  const r = place(w, h, [[x1, y1 - h], [x1, y2], [x2 - w, y1 - h], [x1, y1]], others,
                  ctx.canvas.width, ctx.canvas.height) || [x1, Math.max(0, y1 - h), x1 + w, Math.max(0, y1 - h) + h];
  ctx.fillStyle = color;
  ctx.fillRect(r[0], r[1], w, h);
  ctx.fillStyle = textColorFor(color);
  ctx.textBaseline = "top";
  ctx.fillText(label, r[0] + 4, r[1] + 3);
  taken.push(r);
}

function drawScoreBars(ctx, face, labels, scale, taken) {
  // Horizontal bars, one per emotion, beside the box (right, left, below, above) where they cover no face.
  taken = taken || [];
  const [x1, y1, x2, y2] = face.bbox;
  const rowH = Math.max(10, Math.round(12 * scale));
  const barW = Math.max(80, Math.round(110 * scale));
  const fontPx = Math.max(9, rowH - 2);
  const names = ORDER.filter((l) => labels.includes(l)).concat(labels.filter((l) => !ORDER.includes(l)));
  const w = barW + 70 * scale, h = rowH * names.length + 4, gap = 4 * scale;
  const r = place(w, h, [[x2 + gap, y1], [x1 - gap - w, y1], [x1, y2 + gap], [x1, y1 - gap - h]], taken,
                  ctx.canvas.width, ctx.canvas.height);
  if (!r) return false;
  const [left, top] = r;
  ctx.fillStyle = "rgba(0,0,0,0.6)";
  ctx.fillRect(left, top, w, h);
  ctx.font = fontPx + "px sans-serif";
  ctx.textBaseline = "top";
  names.forEach((lab, i) => {
    const p = face.scores[lab] || 0;
    const y = top + 2 + i * rowH;
    ctx.fillStyle = "#ddd";
    ctx.fillText(lab, left + 3, y);
    ctx.fillStyle = colorFor(lab);
    ctx.fillRect(left + 62 * scale, y + 1, barW * p, rowH - 3);
  });
  taken.push(r);
  return true;
}

function faceLabel(face) {
  return face.emotion ? face.emotion + " " + Math.round(100 * face.confidence) + "%" : "face";
}

// ------------------------------------------------------------------ (a) image
async function analyzeImage(file) {
  const status = $("image-status");
  const list = $("image-results");
  list.innerHTML = "";
  status.className = "muted";
  status.textContent = "analysing " + file.name + "…";
  const img = new Image();
  const url = URL.createObjectURL(file);
  const loaded = new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; });
  img.src = url;
  const form = new FormData();
  form.append("consent", $("consent-basis").value);  // before the file: the server checks it first
  form.append("file", file);
  let result;
  try {
    const resp = await fetch("/v1/images:analyze", { method: "POST", headers: authHeaders(), body: form });
    if (!resp.ok) throw new Error(await errorText(resp));
    result = await resp.json();
    await loaded;
  } catch (e) {
    status.className = "error";
    status.textContent = String(e.message || e);
    return;
  }
  const canvas = $("image-canvas");
  $("image-hint").hidden = true;
  canvas.hidden = false;
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  URL.revokeObjectURL(url);
  const scale = Math.max(img.naturalWidth, img.naturalHeight) / 640;
  const taken = result.faces.map((f) => f.bbox.slice());
  let bars = 0;
  result.faces.forEach((face, i) => {
    const color = face.emotion ? colorFor(face.emotion) : "#ff0";
    drawFaceBox(ctx, face, "#" + (i + 1) + " " + faceLabel(face), scale, color, taken);
  });
  result.faces.forEach((face) => { if (drawScoreBars(ctx, face, result.labels, scale, taken)) bars += 1; });
  canvas.dataset.bars = String(bars);
  result.faces.forEach((face, i) => {
    const li = document.createElement("li");
    li.className = "face-result";
    li.dataset.emotion = face.emotion || "";
    li.textContent = "face " + (i + 1) + ": " + faceLabel(face) + " · box [" +
      face.bbox.map((v) => Math.round(v)).join(", ") + "]";
    list.appendChild(li);
  });
  canvas.dataset.faces = String(result.faces.length);
  status.className = "ok";
  status.textContent = result.faces.length + " face(s) · model " + result.model;
}

// ------------------------------------------------------------------ (b) video job
async function submitVideo(file) {
  const status = $("video-status");
  const link = $("video-report-link");
  const frame = $("video-report");
  link.hidden = true;
  frame.hidden = true;
  $("video-error").hidden = true;
  $("video-progress").value = 0;
  status.className = "muted";
  status.textContent = "uploading " + file.name + "…";
  const form = new FormData();
  form.append("consent", $("consent-basis").value);  // before the file: the server checks it first
  form.append("file", file);
  const headers = authHeaders();
  try {
    const resp = await fetch("/v1/videos", { method: "POST", headers: headers, body: form });
    if (!resp.ok) throw new Error(await errorText(resp));
    let job = await resp.json();
    status.dataset.jobId = job.id;
    while (job.state === "queued" || job.state === "running") {
      status.textContent = job.state + " · " + job.progress_percent + "%" +
        (job.eta_s != null ? " · ETA " + Math.round(job.eta_s) + " s" : "");
      $("video-progress").value = job.progress_percent;
      await new Promise((r) => setTimeout(r, 500));
      const poll = await fetch("/v1/jobs/" + job.id, { headers: headers });
      if (!poll.ok) throw new Error(await errorText(poll));
      job = await poll.json();
    }
    if (job.state !== "done") {
      const err = job.error && typeof job.error === "object" ? (job.error.code || "") + ": " + job.error.message
                                                               : job.error;
      throw new Error("job " + job.state + ": " + (err || "the server gave no reason"));
    }
    $("video-progress").value = 100;
    // The report may need the API key, which an iframe cannot send: fetch it, show it as a blob.
    const rep = await fetch(job.links.report, { headers: headers });
    if (!rep.ok) throw new Error(await errorText(rep));
    const url = URL.createObjectURL(new Blob([await rep.text()], { type: "text/html" }));
    link.href = url;
    link.hidden = false;
    frame.src = url;
    frame.hidden = false;
    status.className = "ok";
    status.textContent = "done · " + job.frames_analysed + " frames analysed";
    status.dataset.state = "done";
  } catch (e) {
    status.className = "error";
    status.textContent = "failed";
    status.dataset.state = "failed";
    const box = $("video-error");
    box.textContent = String(e.message || e);
    box.hidden = false;
  }
}

// ------------------------------------------------------------------ (c) live camera
const TIMELINE_MS = 30000;
const live = {
  running: false, stream: null, ws: null, t0: 0, labels: [], history: [],
  grab: document.createElement("canvas"), sent: document.createElement("canvas"), frames: 0,
};

function wsUrl(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

async function startCamera() {
  const status = $("live-status");
  if (!consentGiven()) return;
  $("cam-start").disabled = true;
  status.className = "muted";
  status.textContent = "starting camera…";
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) {
    status.className = "error";
    status.textContent = "camera unavailable: " + (e.message || e.name);
    updateGate();
    return;
  }
  const video = $("cam-video");
  video.srcObject = live.stream;
  await video.play();
  live.running = true;
  live.history = [];
  live.frames = 0;
  live.t0 = performance.now();
  $("cam-stop").disabled = false;
  const ws = new WebSocket(wsUrl("/v1/stream"));
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  ws.onopen = () => {
    // Browsers cannot set headers on a WebSocket: credentials and consent go in a first message.
    ws.send(JSON.stringify({ type: "hello", api_key: $("api-key").value.trim() || null,
                             consent: $("consent-basis").value }));
    status.textContent = "connected, waiting for the server…";
  };
  ws.onmessage = (ev) => onStreamMessage(JSON.parse(ev.data));
  ws.onclose = (ev) => {
    if (live.ws === ws && live.running) stopCamera("connection closed (" + ev.code + (ev.reason ? " " + ev.reason : "") + ")");
  };
}

function stopCamera(why) {
  live.running = false;
  if (live.ws) { const ws = live.ws; live.ws = null; try { ws.close(); } catch (e) { /* already closed */ } }
  if (live.stream) { live.stream.getTracks().forEach((t) => t.stop()); live.stream = null; }
  $("cam-stop").disabled = true;
  $("live-status").className = why && why.startsWith("stopped") ? "muted" : "error";
  $("live-status").textContent = why || "stopped";
  updateGate();
}

function onStreamMessage(msg) {
  const status = $("live-status");
  if (msg.type === "ready") {
    live.labels = msg.labels;
    drawLegend();
    status.className = "ok";
    status.textContent = "streaming";
    sendFrame();
  } else if (msg.type === "faces") {
    live.frames += 1;
    showLiveFaces(msg);
    status.className = "ok";
    status.textContent = "streaming · frame " + msg.frame_index + " · " + msg.faces.length + " face(s)";
    sendFrame();
  } else if (msg.type === "error") {
    status.className = "error";
    status.textContent = msg.error.code + ": " + msg.error.message;
    if (live.running) setTimeout(sendFrame, 200);  // a bad frame does not end the stream
  }
}

function sendFrame() {
  const ws = live.ws;
  const video = $("cam-video");
  if (!live.running || !ws || ws.readyState !== WebSocket.OPEN) return;
  if (!video.videoWidth) { setTimeout(sendFrame, 50); return; }
  live.grab.width = video.videoWidth;
  live.grab.height = video.videoHeight;
  live.grab.getContext("2d").drawImage(video, 0, 0);
  const ts = performance.now() - live.t0;
  live.grab.toBlob(async (blob) => {
    if (!blob || !live.running || ws.readyState !== WebSocket.OPEN) return;
    const jpeg = new Uint8Array(await blob.arrayBuffer());
    // One binary message: "ALF1", big-endian float64 timestamp (ms), JPEG bytes.
    const buf = new Uint8Array(12 + jpeg.length);
    buf.set([65, 76, 70, 49], 0);
    new DataView(buf.buffer).setFloat64(4, ts, false);
    buf.set(jpeg, 12);
    // Keep the frame that was sent so that the overlay lines up with it.
    live.sent.width = live.grab.width;
    live.sent.height = live.grab.height;
    live.sent.getContext("2d").drawImage(live.grab, 0, 0);
    ws.send(buf);
  }, "image/jpeg", 0.8);
}

function showLiveFaces(msg) {
  const canvas = $("live-canvas");
  $("live-hint").hidden = true;
  canvas.hidden = false;
  canvas.width = live.sent.width || 640;
  canvas.height = live.sent.height || 480;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(live.sent, 0, 0);
  const list = $("live-results");
  list.innerHTML = "";
  const taken = msg.faces.map((f) => f.bbox.slice());
  msg.faces.forEach((face) => {
    const track = face.track_id == null ? "track —" : "track " + face.track_id;
    const color = face.emotion ? colorFor(face.emotion) : "#ff0";
    drawFaceBox(ctx, face, track + " · " + faceLabel(face), canvas.width / 640, color, taken);
    const li = document.createElement("li");
    li.className = "live-face";
    li.dataset.track = face.track_id == null ? "" : String(face.track_id);
    li.dataset.emotion = face.emotion || "";
    li.textContent = track + ": " + faceLabel(face) + " (smoothed)";
    list.appendChild(li);
  });
  // Timeline: the smoothed scores of the first tracked face (or the first face).
  const face = msg.faces.find((f) => f.track_id != null) || msg.faces[0];
  live.history.push({ t: msg.timestamp_ms, scores: face ? face.scores : null });
  while (live.history.length && live.history[0].t < msg.timestamp_ms - TIMELINE_MS) live.history.shift();
  drawTimeline(msg.timestamp_ms);
}

function drawLegend() {
  const legend = $("timeline-legend");
  legend.innerHTML = "";
  live.labels.forEach((lab, i) => {
    const s = document.createElement("span");
    s.style.setProperty("--c", colorFor(lab));
    s.textContent = lab;
    legend.appendChild(s);
  });
}

function drawTimeline(now) {
  const canvas = $("timeline-canvas");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.strokeStyle = "#ddd";
  ctx.lineWidth = 1;
  for (const p of [0.25, 0.5, 0.75]) {
    ctx.beginPath(); ctx.moveTo(0, H - p * H); ctx.lineTo(W, H - p * H); ctx.stroke();
  }
  // The x axis spans the history so far (at least 5 s), up to the last 30 s.
  const first = live.history.length ? live.history[0].t : now;
  const span = Math.min(TIMELINE_MS, Math.max(5000, now - first));
  const x = (t) => W - ((now - t) / span) * W;
  live.labels.forEach((lab, i) => {
    ctx.strokeStyle = colorFor(lab);
    ctx.lineWidth = 2;
    ctx.beginPath();
    let pen = false;
    for (const h of live.history) {
      if (!h.scores) { pen = false; continue; }  // gaps where no face was seen
      const y = H - (h.scores[lab] || 0) * (H - 4) - 2;
      if (pen) ctx.lineTo(x(h.t), y); else ctx.moveTo(x(h.t), y);
      pen = true;
    }
    ctx.stroke();
  });
  canvas.dataset.points = String(live.history.length);
}

// ------------------------------------------------------------------ wiring
window.addEventListener("DOMContentLoaded", async () => {
  await loadHealth();
  $("consent-ack").addEventListener("change", updateGate);
  $("consent-basis").addEventListener("change", updateGate);
  $("image-input").addEventListener("change", (e) => {
    if (e.target.files.length && consentGiven()) analyzeImage(e.target.files[0]);
  });
  $("video-input").addEventListener("change", (e) => {
    if (e.target.files.length && consentGiven()) submitVideo(e.target.files[0]);
  });
  $("cam-start").addEventListener("click", startCamera);
  $("cam-stop").addEventListener("click", () => stopCamera("stopped"));
  updateGate();
  document.body.dataset.ready = "1";
});
