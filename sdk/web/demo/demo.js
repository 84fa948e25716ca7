// AffectLens demo: consent → camera → on-device analysis → overlays, bars, per-track timelines.
// Nothing leaves the page. `?record=N` keeps the first N analysed frames for the browser test;
// `?window=`, `?maxLostMs=`, `?threads=` set the smoothing window, track lifetime and WASM threads.
import { EmotionRecognizer, emotionColor } from "../dist/browser.mjs";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const record = Number(params.get("record") || 0);
const state = { rec: null, photo: null, stream: null, running: false, timelines: new Map(), frames: [], results: [] };
window.affectlensDemo = state;

async function init() {
  const t0 = performance.now();
  const smoothing = { method: "moving-average", window: Number(params.get("window") || 15) };
  const tracker = params.has("maxLostMs") ? { maxLostMs: Number(params.get("maxLostMs")) } : {};
  state.rec = await EmotionRecognizer.create({ runningMode: "video", smoothing, tracker, threads: Number(params.get("threads") || 0) });
  state.loadMs = performance.now() - t0;
  $("appearance-notice").textContent = state.rec.notice;
  $("status").textContent = `Models loaded on this device (${state.rec.spec.name}, ${state.rec.labels.length} labels) in ${state.loadMs.toFixed(0)} ms.`;
  state.ready = true;
}

$("consent-check").addEventListener("change", (e) => { $("start").disabled = !e.target.checked || state.running; });
$("start").addEventListener("click", startCamera);
$("stop").addEventListener("click", stopCamera);
$("photo").addEventListener("change", analysePhoto);

async function startCamera() {
  if (!$("consent-check").checked) return; // the camera never starts without consent
  state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: false });
  const video = $("video");
  video.srcObject = state.stream;
  await video.play();
  state.running = true;
  $("start").disabled = true;
  $("stop").disabled = false;
  state.rec.reset();
  loop();
}

function stopCamera() {
  state.running = false;
  state.stream?.getTracks().forEach((t) => t.stop());
  state.stream = null;
  $("start").disabled = !$("consent-check").checked;
  $("stop").disabled = true;
}

async function loop() {
  const video = $("video");
  const canvas = new OffscreenCanvas(1, 1);
  let last = -1;
  while (state.running) {
    if (video.readyState >= 2 && video.videoWidth) {
      if (canvas.width !== video.videoWidth) { canvas.width = video.videoWidth; canvas.height = video.videoHeight; }
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(video, 0, 0);
      const frame = ctx.getImageData(0, 0, canvas.width, canvas.height);
      const ts = Math.max(performance.now(), last + 1);
      last = ts;
      const result = await state.rec.detectForVideo(frame, ts);
      if (state.frames.length < record) state.frames.push({ timestamp_ms: ts, width: frame.width, height: frame.height, data: frame.data });
      state.results.push(result);
      draw(result, frame.width, frame.height);
    }
    await new Promise((r) => requestAnimationFrame(r));
  }
}

async function analysePhoto(e) {
  const file = e.target.files[0];
  if (!file) return;
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none", imageOrientation: "from-image" });
  state.photo ??= await EmotionRecognizer.create({ runningMode: "image" }); // files already cached by the browser
  const result = await state.photo.detect(bitmap);
  const video = $("video");
  video.style.display = "none";
  const overlay = $("overlay");
  overlay.style.position = "static";
  draw(result, bitmap.width, bitmap.height, bitmap);
}

function draw(result, w, h, background) {
  const overlay = $("overlay");
  overlay.width = w; overlay.height = h;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  if (background) ctx.drawImage(background, 0, 0);
  ctx.lineWidth = Math.max(2, w / 320);
  ctx.font = `${Math.max(12, w / 50)}px system-ui`;
  const bars = $("bars");
  bars.replaceChildren();
  for (const f of result.faces) {
    const [x1, y1, x2, y2] = f.bbox;
    const color = emotionColor(f.emotion);
    ctx.strokeStyle = color; ctx.fillStyle = color;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const tag = `${f.track_id !== null ? "#" + f.track_id + " " : ""}${f.emotion} ${(100 * f.confidence).toFixed(0)}%`;
    ctx.fillText(tag, x1, Math.max(12, y1 - 4));
    bars.append(faceBars(f, result.labels));
    if (f.track_id !== null) timeline(f, result.labels);
  }
}

function faceBars(f, labels) {
  const box = document.createElement("div");
  box.className = "face";
  box.innerHTML = `<strong>${f.track_id !== null ? "Track " + f.track_id : "Face"}</strong>`;
  for (const l of labels) {
    const p = f.scores[l];
    const row = document.createElement("div");
    row.className = "bar";
    row.innerHTML = `<span>${l}</span><div style="width:${(120 * p).toFixed(1)}px;background:${emotionColor(l)}"></div><span>${(100 * p).toFixed(0)}%</span>`;
    box.append(row);
  }
  return box;
}

function timeline(f, labels) {
  let t = state.timelines.get(f.track_id);
  if (!t) {
    const c = document.createElement("canvas");
    c.width = 300; c.height = 40; c.className = "timeline"; c.title = `track ${f.track_id}`;
    $("timelines").append(c);
    t = { canvas: c, x: 0 };
    state.timelines.set(f.track_id, t);
  }
  const ctx = t.canvas.getContext("2d");
  if (t.x >= t.canvas.width) { ctx.drawImage(t.canvas, -1, 0); t.x = t.canvas.width - 1; }
  let y = 0;
  for (const l of labels) { // stacked smoothed probabilities, one pixel column per frame
    const hgt = f.scores[l] * t.canvas.height;
    ctx.fillStyle = emotionColor(l);
    ctx.fillRect(t.x, y, 1, hgt + 0.5);
    y += hgt;
  }
  t.x += 1;
}

init().catch((e) => { $("status").textContent = `Could not load the models: ${e.message}`; state.error = e.message; });
