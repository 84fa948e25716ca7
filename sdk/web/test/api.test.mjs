// The SDK's public surface in Node: errors that say what is wrong, running modes, the
// contract of every shipped model, and the pure functions the pipeline is built from.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  EmotionRecognizer, InvalidImageError, ModelLoadError, PALETTE, ValueError, createSmoother, emotionColor, readImage,
  similarityTransform, x86Int8Path,
} from "../dist/node.mjs";
import { PKG, SHARED, SKIP_SHARED } from "./helpers.mjs";

const MODELS = path.join(PKG, "dist/models");
const manifest = JSON.parse(readFileSync(path.join(MODELS, "manifest.json"), "utf8"));
const tmp = mkdtempSync(path.join(os.tmpdir(), "affectlens-api-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A model folder with the manifest, detector and one model, whose files a test may then break. */
function modelFolder(name, model = manifest.default_model) {
  const dir = path.join(tmp, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const m = manifest.models.find((x) => x.name === model);
  for (const f of ["manifest.json", manifest.detector.file, m.spec, m.file]) {
    copyFileSync(path.join(MODELS, f), path.join(dir, f));
  }
  return { dir, spec: path.join(dir, m.spec), onnx: path.join(dir, m.file) };
}

describe("model loading errors", () => {
  test("an unknown model name lists the shipped models", async () => {
    await assert.rejects(EmotionRecognizer.create({ model: "no-such-model" }),
      (e) => e instanceof ModelLoadError && /no-such-model: unknown model/.test(e.message) && e.message.includes(manifest.default_model));
  });
  test("a missing spec file is named", async () => {
    await assert.rejects(EmotionRecognizer.create({ model: path.join(tmp, "absent.json") }),
      (e) => e instanceof ModelLoadError && /absent\.json: file not found/.test(e.message));
  });
  test("a spec without labels is refused", async () => {
    const { spec } = modelFolder("nolabels");
    const raw = JSON.parse(readFileSync(spec, "utf8"));
    delete raw.labels;
    writeFileSync(spec, JSON.stringify(raw));
    await assert.rejects(EmotionRecognizer.create({ model: spec }), (e) => e instanceof ModelLoadError && /lacks the field 'labels'/.test(e.message));
  });
  test("a spec whose colour does not match its mean/std is refused", async () => {
    const { spec } = modelFolder("badcolor");
    const raw = JSON.parse(readFileSync(spec, "utf8"));
    raw.input.color = raw.input.color === "gray" ? "rgb" : "gray";
    writeFileSync(spec, JSON.stringify(raw));
    await assert.rejects(EmotionRecognizer.create({ model: spec }), (e) => e instanceof ModelLoadError && /mean\/std need/.test(e.message));
  });
  test("a roll dead band outside [0, 90) degrees is refused, as in Python", async () => {
    const { spec } = modelFolder("badband");
    const raw = JSON.parse(readFileSync(spec, "utf8"));
    for (const bad of [90, -1, "15"]) {
      raw.alignment.roll_dead_band_deg = bad;
      writeFileSync(spec, JSON.stringify(raw));
      await assert.rejects(EmotionRecognizer.create({ model: spec }),
        (e) => e instanceof ModelLoadError && /alignment\.roll_dead_band_deg must be a number of degrees in \[0, 90\)/.test(e.message));
    }
  });
  test("a model file that is not the one its spec describes fails the sha256 check", async () => {
    const { spec, onnx } = modelFolder("corrupt");
    const bytes = readFileSync(onnx);
    bytes[bytes.length - 10] ^= 0xff;
    writeFileSync(onnx, bytes);
    await assert.rejects(EmotionRecognizer.create({ model: spec }), (e) => e instanceof ModelLoadError && /sha256 mismatch/.test(e.message));
  });
  test("a spec naming an output the graph lacks is refused", async () => {
    const { spec } = modelFolder("badoutput");
    const raw = JSON.parse(readFileSync(spec, "utf8"));
    raw.output_name = "logits_missing";
    writeFileSync(spec, JSON.stringify(raw));
    await assert.rejects(EmotionRecognizer.create({ model: spec }), (e) => e instanceof ModelLoadError && /names output 'logits_missing'/.test(e.message));
  });
  test("a models folder without a manifest is explained", async () => {
    await assert.rejects(EmotionRecognizer.create({ modelBaseUrl: path.join(tmp, "nothing") }),
      (e) => e instanceof ModelLoadError && /manifest\.json: file not found; modelBaseUrl must hold/.test(e.message)
        && !/npm run build/.test(e.message));
  });
  test("a raw model folder (not exported) names the export command, not the package build", async () => {
    const { spec } = modelFolder("rawfolder");
    const raw = path.join(tmp, "raw-model");
    mkdirSync(raw, { recursive: true });
    copyFileSync(spec, path.join(raw, "model.json"));
    await assert.rejects(EmotionRecognizer.create({ modelPath: raw }),
      (e) => e instanceof ModelLoadError && /not an export bundle.*affectlens export --model/.test(e.message)
        && !/npm run build/.test(e.message));
  });
});

describe("options and running modes", () => {
  for (const [what, opts, re] of [
    ["detector minScore above 1", { detector: { minScore: 1.5 } }, /minScore must be in \[0, 1\]/],
    ["unknown smoothing", { smoothing: { method: "kalman" } }, /smoothing.method must be one of/],
    ["moving-average window 0", { smoothing: { method: "moving-average", window: 0 } }, /window of 1\.\.300/],
    ["both window and windowS", { smoothing: { method: "moving-average", window: 5, windowS: 0.5 } }, /not both/],
    ["hmm holdS 0", { smoothing: { method: "hmm", holdS: 0 } }, /holdS in \(0, 600\]/],
    ["unknown running mode", { runningMode: "live" }, /runningMode must be/],
    ["detectEvery -1", { runningMode: "video", detectEvery: -1 }, /detectEvery must be 0 \(auto\) or an integer >= 1, got -1/],
    ["rescanS 0", { runningMode: "video", rescanS: 0 }, /rescanS must be in \(0, 60\] seconds, got 0/],
    ["rescanS Infinity", { runningMode: "video", rescanS: Infinity }, /rescanS must be in \(0, 60\]/],
    ["regionsEvery 1.5", { runningMode: "video", regionsEvery: 1.5 }, /regionsEvery must be 0 .* or an integer >= 1, got 1.5/],
    ["classifyPerS -1", { runningMode: "video", classifyPerS: -1 }, /classifyPerS must be in \[0, 10000\]/],
    ["classifyPerS Infinity", { runningMode: "video", classifyPerS: Infinity }, /classifyPerS must be in \[0, 10000\]/],
    ["tracker minIou 1", { tracker: { minIou: 1 } }, /minIou in \(0, 1\)/],
  ]) {
    test(`rejected: ${what}`, async () => {
      await assert.rejects(EmotionRecognizer.create(opts), (e) => e instanceof ValueError && re.test(e.message));
    });
  }

  let image, video;
  before(async () => {
    image = await EmotionRecognizer.create({ threads: 1 });
    video = await EmotionRecognizer.create({ runningMode: "video", threads: 1 });
  });
  after(async () => { await image.close(); await video.close(); });
  const gray = (w, h, v = 128) => ({ data: new Uint8Array(w * h).fill(v), width: w, height: h });

  test("detect() on a video recognizer and detectForVideo() on an image one are refused", () => {
    assert.throws(() => video.detect(gray(64, 64)), (e) => e instanceof ValueError && /runningMode "image"/.test(e.message));
    assert.throws(() => image.detectForVideo(gray(64, 64), 0), (e) => e instanceof ValueError && /runningMode "video"/.test(e.message));
  });
  test("timestamps must increase", async () => {
    await video.detectForVideo(gray(64, 64), 100);
    assert.throws(() => video.detectForVideo(gray(64, 64), 100), (e) => e instanceof ValueError && /timestamps must increase: got 100 ms after 100 ms/.test(e.message));
    assert.throws(() => video.detectForVideo(gray(64, 64), NaN), ValueError);
    video.reset();
    const r = await video.detectForVideo(gray(64, 64), 5);
    assert.equal(r.info.frame_index, 0);
  });
  test("reset() takes effect after the frames already submitted, before the ones that follow", async () => {
    video.reset();
    const first = video.detectForVideo(gray(64, 64), 120);
    video.reset();
    const again = video.detectForVideo(gray(64, 64), 0); // a new stream may start at 0 at once
    const [a, b] = await Promise.all([first, again]);
    assert.equal(a.info.timestamp_ms, 120);
    assert.equal(b.info.frame_index, 0);
  });
  for (const [what, input, re] of [
    ["a string", "photo.jpg", /got string/],
    ["null", null, /got null/],
    ["a buffer of the wrong length", { data: new Uint8Array(10), width: 64, height: 64 }, /got 10 values/],
    ["an image too small for a face", gray(4, 30), /at least 8x8/],
  ]) {
    test(`unsupported input: ${what}`, async () => {
      await assert.rejects(image.detect(input), (e) => e instanceof InvalidImageError && re.test(e.message));
    });
  }
  test("an image without faces gives an empty, well-formed result", async () => {
    const r = await image.detect(gray(120, 90));
    assert.deepEqual(r.faces, []);
    assert.deepEqual(r.labels, image.labels);
    assert.deepEqual(r.info.image_size_hw, [90, 120]);
  });
  test("close() ends the recognizer", async () => {
    const rec = await EmotionRecognizer.create({ threads: 1 });
    await rec.close();
    assert.throws(() => rec.detect(gray(64, 64)), (e) => e instanceof ValueError && /after close\(\)/.test(e.message));
  });
});

describe("every shipped model on a real face", { skip: SKIP_SHARED }, () => {
  let face;
  before(async () => { face = await readImage(path.join(SHARED, "media/images/single_face.jpg")); });
  for (const m of manifest.models) {
    test(`${m.name}: labels from its spec, probabilities sum to 1, a colour per label`, async () => {
      const spec = JSON.parse(readFileSync(path.join(MODELS, m.spec), "utf8"));
      const rec = await EmotionRecognizer.create({ model: m.name, threads: 1 });
      try {
        const r = await rec.detect(face);
        assert.deepEqual(r.labels, spec.labels);
        assert.equal(r.faces.length, 1);
        const p = r.labels.map((l) => r.faces[0].scores[l]);
        assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-4, `sum ${p}`);
        assert.equal(r.faces[0].emotion, r.labels[p.indexOf(Math.max(...p))]);
        for (const l of spec.labels) assert.ok(PALETTE.colors[l], `palette lacks ${l}`);
      } finally {
        await rec.close();
      }
    });
  }
  test("the default is the variant Python's registry picks for this CPU (manifest written from it)", async () => {
    const rec = await EmotionRecognizer.create({ model: "default", threads: 1 });
    const want = x86Int8Path() && manifest.default_int8_model ? manifest.default_int8_model : manifest.default_model;
    assert.equal(rec.spec.name, want);
    await rec.close();
  });
});

describe("readImage", () => {
  test("a missing file and empty bytes are named", async () => {
    await assert.rejects(readImage(path.join(tmp, "nope.jpg")), (e) => e instanceof InvalidImageError && /nope\.jpg/.test(e.message));
    await assert.rejects(readImage(new Uint8Array(0)), (e) => e instanceof InvalidImageError && /empty/.test(e.message));
  });
  test("a truncated JPEG is refused", { skip: SKIP_SHARED }, async () => {
    const bytes = readFileSync(path.join(SHARED, "media/images/single_face.jpg"));
    await assert.rejects(readImage(new Uint8Array(bytes.subarray(0, bytes.length >> 1))), InvalidImageError);
  });
});

describe("building blocks", () => {
  test("similarityTransform recovers a known rotation, scale and shift", () => {
    const a = 0.3, s = 1.7, tx = 12, ty = -5;
    const src = [[0, 0], [10, 0], [0, 10], [7, 3], [2, 9]];
    const dst = src.map(([x, y]) => [s * (Math.cos(a) * x - Math.sin(a) * y) + tx, s * (Math.sin(a) * x + Math.cos(a) * y) + ty]);
    const m = similarityTransform(src, dst);
    const want = [s * Math.cos(a), -s * Math.sin(a), tx, s * Math.sin(a), s * Math.cos(a), ty];
    m.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-9, `${m} vs ${want}`));
    assert.throws(() => similarityTransform([[1, 1], [1, 1]], [[0, 0], [1, 1]]), /coincide/);
  });
  test("emotionColor reads the project palette", () => {
    assert.equal(emotionColor("happy"), PALETTE.colors.happy);
    assert.deepEqual(PALETTE.order.slice(0, 3), ["angry", "disgust", "fear"]);
  });
});

describe("smoothing in seconds (as Python's affectlens.smoothing)", () => {
  const onehot = (k) => Array.from({ length: 7 }, (_, i) => (i === k ? 1 : 0));
  test("EMA: after tauS a step has gone 1 - 1/e of the way, however the time is split", () => {
    for (const dts of [[300], [100, 100, 100], [50, 250]]) {
      const sm = createSmoother({ method: "ema", tauS: 0.3 });
      sm.smooth(1, onehot(3), 0);
      let t = 0, out;
      for (const dt of dts) { t += dt; out = sm.smooth(1, onehot(4), t); }
      assert.ok(Math.abs(out[4] - (1 - Math.exp(-1))) < 1e-9, `${dts}: ${out[4]}`);
    }
  });
  test("moving average: the frames of the last windowS seconds on uneven gaps", () => {
    const sm = createSmoother({ method: "moving-average", windowS: 0.1 });
    const ts = [0, 14, 55, 60, 170, 180];
    const outs = ts.map((t, i) => sm.smooth(1, onehot(i % 7), t));
    assert.deepEqual(outs[3].slice(0, 4), [0.25, 0.25, 0.25, 0.25]);
    assert.equal(outs[4][4], 1, "170 ms: the frames at <= 70 ms fell out");
    assert.deepEqual([outs[5][4], outs[5][5]], [0.5, 0.5]);
  });
  test("HMM: holdS at 25 frames/s is stayProb exp(-40 / 800)", () => {
    const a = createSmoother({ method: "hmm", holdS: 0.8 });
    const b = createSmoother({ method: "hmm", stayProb: Math.exp(-40 / 800) });
    for (let i = 0; i < 30; i++) {
      const p = Array.from({ length: 7 }, (_, k) => (k === (i % 5 === 0 ? 5 : 3) ? 0.6 : 0.4 / 6));
      const x = a.smooth(1, p, 40 * i), y = b.smooth(1, p, 40 * i);
      x.forEach((v, k) => assert.ok(Math.abs(v - y[k]) < 1e-12));
    }
  });
  test("frame and time parameters are exclusive and checked", () => {
    assert.throws(() => createSmoother({ method: "moving-average", window: 15, windowS: 0.5 }), /not both/);
    assert.throws(() => createSmoother({ method: "ema", tauS: 0 }), /tauS in \(0, 60\]/);
    assert.throws(() => createSmoother({ method: "hmm", stayProb: 0.9, holdS: 1 }), /not both/);
  });
});
