// The learned smoother in the SDK: the same temporal ONNX model as Python's, fed the same inputs,
// gives the same outputs (parity within 1e-3 on a real clip's tracks), picked by the emotion
// model's labels and name, and hooked into the recognizer's video mode.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import * as ort from "onnxruntime-node";
import { EmotionRecognizer, ModelLoadError, loadSmoother, pickTemporalModel, readImage } from "../dist/node.mjs";
import { serve } from "../scripts/serve.mjs";
import { CHROMIUM, PKG, SHARED, SKIP_SHARED, launch, runPython } from "./helpers.mjs";

const MODELS = path.join(PKG, "dist/models");
const manifest = JSON.parse(readFileSync(path.join(MODELS, "manifest.json"), "utf8"));
const tmp = mkdtempSync(path.join(os.tmpdir(), "affectlens-temporal-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** What the recognizer gives `loadSmoother`, from the package's model folder. */
function context(labels, classifier) {
  return {
    labels, classifier, temporalModels: manifest.temporal_models,
    resolve: (f) => path.join(MODELS, f),
    readJson: async (ref) => JSON.parse(readFileSync(ref, "utf8")),
    loadSession: (ref) => ort.InferenceSession.create(readFileSync(ref), { executionProviders: ["cpu"], intraOpNumThreads: 1 }),
    Tensor: ort.Tensor, frontalNoseRatio: manifest.quality.frontal_nose_ratio,
  };
}

const modelOf = (name) => JSON.parse(readFileSync(path.join(MODELS, `${name}.json`), "utf8"));

describe("temporal models in the package", () => {
  test("the manifest lists one per label set, each picked for its own classifier family", () => {
    const tm = manifest.temporal_models;
    assert.ok(tm.length >= 2, `expected the 7- and 8-label temporal models, got ${tm.map((m) => m.name)}`);
    for (const name of [manifest.default_model, manifest.default_int8_model, "fer-vgg48s-int8", "fer-vgg48s-ens-zoom"]) {
      const spec = modelOf(name);
      const picked = pickTemporalModel(tm, spec.labels, name);
      assert.deepEqual(picked.labels, spec.labels, name);
      assert.ok(readFileSync(path.join(MODELS, picked.file)).length < 1_000_000);
    }
    assert.equal(pickTemporalModel(tm, modelOf(manifest.default_int8_model).labels, manifest.default_int8_model).classifier,
      manifest.default_int8_model, "the default's temporal model learned the default's own outputs");
    assert.throws(() => pickTemporalModel(tm, ["happy", "sad"], "custom"), (e) => e instanceof ModelLoadError &&
      /no shipped temporal model .*\[happy, sad\].*train-temporal/.test(e.message));
  });

  test("an explicit temporal model for other labels is refused with both label lists", async () => {
    const seven = manifest.temporal_models.find((m) => m.labels.length === 7).name;
    const labels = modelOf(manifest.default_int8_model).labels;
    await assert.rejects(loadSmoother({ method: "learned", model: seven }, context(labels, manifest.default_int8_model)),
      (e) => e instanceof ModelLoadError && /trained on the outputs of .*contempt.*retrain/.test(e.message));
  });
});

describe("learned smoother parity with Python on a real clip", { skip: SKIP_SHARED }, () => {
  test("crowd clip, default model: the same inputs give Python's smoothed probabilities within 1e-3", async () => {
    const out = path.join(tmp, "learned.json");
    runPython(["learned", out, path.join(SHARED, "media/videos/crowd_walking.mp4"), "12", "1"]);
    const ref = JSON.parse(readFileSync(out, "utf8"));
    const sm = await loadSmoother({ method: "learned" }, context(ref.labels, ref.model));
    assert.equal(sm.spec.name, ref.temporal_model, "the SDK picks the temporal model Python picks");
    let worst = 0, rows = 0, most = 0;
    for (const fr of ref.frames) {
      const idx = fr.track_id.flatMap((t, i) => (t >= 1 ? [i] : []));
      most = Math.max(most, idx.length);
      const got = await sm.smoothFrame(idx.map((i) => ({ trackId: fr.track_id[i], p: fr.probs_raw[i], box: fr.xyxy[i],
        landmarks: fr.landmarks[i], score: fr.det_score[i] })), fr.timestamp_ms);
      idx.forEach((i, k) => {
        rows++;
        got[k].forEach((v, c) => { worst = Math.max(worst, Math.abs(v - fr.probs[i][c])); });
      });
    }
    console.log(`learned smoother parity: ${ref.temporal_model}, ${rows} face-frames, up to ${most} tracks per call, max diff ${worst.toExponential(2)}`);
    assert.ok(rows >= 40 && most >= 5, `expected several tracks per frame, got ${rows} face-frames, ${most} at most`);
    assert.ok(worst < 1e-3, `max difference ${worst}`);
  });

  test("video mode with smoothing { method: 'learned' }: smoothed scores differ from the raw ones and sum to 1", async () => {
    const rec = await EmotionRecognizer.create({ runningMode: "video", smoothing: { method: "learned" }, threads: 2 });
    try {
      const img = await readImage(path.join(SHARED, "media/images/single_face.jpg"));
      let last;
      for (let i = 0; i < 6; i++) last = await rec.detectForVideo(img, 40 * i);
      const face = last.faces[0];
      assert.ok(face.track_id !== null, "the face is tracked");
      const sum = Object.values(face.scores).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-5, `scores sum to ${sum}`);
      const diff = Math.max(...rec.labels.map((l) => Math.abs(face.scores[l] - face.scores_raw[l])));
      assert.ok(diff > 1e-3, "the learned model changed the probabilities");
    } finally {
      await rec.close();
    }
  });
});

describe("learned smoother in headless Chromium (onnxruntime-web)", {
  skip: SKIP_SHARED || (existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium)`),
}, () => {
  let server;
  before(async () => { server = await serve(); });
  after(async () => { await server?.close(); });

  test("video mode in the browser: the smoothed scores equal Node's LearnedSmoother on the same raw scores within 1e-3", async () => {
    const browser = await launch();
    let frames;
    try {
      const page = await browser.newPage();
      await page.goto(`${server.url}/demo/blank.html`);
      const b64 = readFileSync(path.join(SHARED, "media/images/single_face.jpg")).toString("base64");
      frames = await page.evaluate(async (data) => {
        const { EmotionRecognizer } = await import("/dist/browser.mjs");
        const rec = await EmotionRecognizer.create({ runningMode: "video", smoothing: { method: "learned" }, threads: 1 });
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/jpeg" }), { colorSpaceConversion: "none" });
        const out = [];
        for (let i = 0; i < 8; i++) out.push({ t: 33 * i + (i % 3) * 7, model: rec.spec.name, r: await rec.detectForVideo(bitmap, 33 * i + (i % 3) * 7) });
        await rec.close();
        return out;
      }, b64);
    } finally {
      await browser.close();
    }
    const labels = frames[0].r.labels;
    const sm = await loadSmoother({ method: "learned" }, context(labels, frames[0].model));
    let worst = 0, n = 0;
    for (const { t, r } of frames) {
      // faces the reading budget held (read: false) were not fed to the recognizer's smoother
      const tracked = r.faces.filter((f) => f.track_id !== null && f.read);
      const got = await sm.smoothFrame(tracked.map((f) => ({ trackId: f.track_id, p: labels.map((l) => f.scores_raw[l]),
        box: f.bbox, landmarks: f.landmarks, score: f.det_score })), t);
      tracked.forEach((f, k) => { n++; labels.forEach((l, c) => { worst = Math.max(worst, Math.abs(f.scores[l] - got[k][c])); }); });
    }
    console.log(`learned smoother, Chromium vs Node: ${n} face-frames, max diff ${worst.toExponential(2)}`);
    assert.ok(n >= 6, `expected a tracked face in most frames, got ${n}`);
    assert.ok(worst < 1e-3, `max difference ${worst}`);
  });
});
