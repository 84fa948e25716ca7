// Parity of the SDK in Node (onnxruntime-node) with the Python library on real photos and video.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { EmotionRecognizer, alignFace, readImage, resizeLinear } from "../dist/node.mjs";
import { SHARED, SKIP_SHARED, parityImages, parityReport, runPython, matchFaces } from "./helpers.mjs";

const tmp = mkdtempSync(path.join(os.tmpdir(), "affectlens-sdk-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function parityFor(model, files = parityImages()) {
  const out = path.join(tmp, `ref-${model ?? "default"}.json`);
  runPython(["images", out, ...files], model ? { AFFECTLENS_MODEL: model } : {});
  const ref = JSON.parse(readFileSync(out, "utf8"));
  const rec = await EmotionRecognizer.create({ model, threads: 2 });
  try {
    assert.equal(rec.spec.name, ref.model, "the SDK's default model is the Python library's");
    assert.deepEqual(rec.labels, ref.labels);
    const perImage = [];
    for (const f of files) {
      const got = await rec.detect(await readImage(f));
      const want = ref.images[path.basename(f)];
      assert.deepEqual(got.info.image_size_hw, want.info.image_size_hw, `${f}: image size`);
      perImage.push([path.basename(f), got.faces, want.faces]);
    }
    return parityReport(perImage, ref.labels);
  } finally {
    await rec.close();
  }
}

describe("Node parity with Python on real photos", { skip: SKIP_SHARED }, () => {
  test("default model: same faces, boxes within 2 px, probabilities within 0.02, top emotion >= 99%", async () => {
    const r = await parityFor(undefined);
    console.log("node parity (default model):", JSON.stringify(r));
    assert.ok(r.faces >= 20, `expected the photos to hold at least 20 faces, matched ${r.faces}`);
    assert.equal(r.missing, 0, "faces Python finds that the SDK misses");
    assert.equal(r.extra, 0, "faces the SDK finds that Python does not");
    assert.ok(r.maxBoxPx <= 2, `box difference ${r.maxBoxPx} px`);
    assert.ok(r.maxProbDiff <= 0.02, `probability difference ${r.maxProbDiff}`);
    assert.ok(r.topAgreement >= 0.99, `top-emotion agreement ${r.topAgreement}`);
    assert.ok(r.maxQualityDiff <= 0.02, `quality difference ${r.maxQualityDiff}`);
  });

  test("an 8-label FER+ model works from its spec alone", async () => {
    const r = await parityFor("ferplus-vgg48s", parityImages().filter((f) => f.includes("media/images")));
    console.log("node parity (ferplus-vgg48s):", JSON.stringify(r));
    assert.ok(r.faces >= 8 && r.missing === 0 && r.extra === 0, JSON.stringify(r));
    assert.ok(r.maxBoxPx <= 2 && r.maxProbDiff <= 0.02 && r.topAgreement >= 0.99, JSON.stringify(r));
  });
});

/** Frames written by python_reference.py video, through a video-mode recognizer: faces, ids, read flags, probabilities. */
async function videoParity(rec, ref, dir) {
  const idMap = new Map();
  let faces = 0, worst = 0, held = 0, px = 0;
  for (const fr of ref.frames) {
    const data = new Uint8Array(readFileSync(path.join(dir, fr.file)));
    const got = await rec.detectForVideo({ data, width: fr.width, height: fr.height, format: "rgb" }, fr.timestamp_ms);
    const m = matchFaces(got.faces, fr.faces.faces);
    assert.equal(m.jsOnly.length + m.pyOnly.length, 0, `frame ${fr.file}: different faces`);
    for (const [a, b] of m.pairs) {
      faces++;
      assert.equal(a.track_id === null, b.track_id === null, `${fr.file}: tracked in one, not the other`);
      if (a.track_id !== null) {
        if (!idMap.has(b.track_id)) idMap.set(b.track_id, a.track_id);
        assert.equal(idMap.get(b.track_id), a.track_id, `${fr.file}: track ids diverge`);
      }
      assert.equal(a.read, b.read, `${fr.file}: read in one, held in the other`);
      if (!a.read) held++;
      a.bbox.forEach((v, k) => { px = Math.max(px, Math.abs(v - b.bbox[k])); });
      a.landmarks.forEach(([x, y], k) => { px = Math.max(px, Math.abs(x - b.landmarks[k][0]), Math.abs(y - b.landmarks[k][1])); });
      for (const l of ref.labels) {
        worst = Math.max(worst, Math.abs(a.scores[l] - b.scores[l]), Math.abs(a.scores_raw[l] - b.scores_raw[l]));
      }
    }
  }
  return { faces, worst, held, px, tracks: [...idMap.values()] };
}

describe("Node video mode against Python's VideoAnalyzer", { skip: SKIP_SHARED }, () => {
  const dir = path.join(tmp, "video");
  let ref;
  before(() => {
    // two clips joined: a hard cut half-way, where Python's VideoAnalyzer ends every track
    const clips = ["media/videos/WolfgangLanger_Pexels.mp4", "media/videos/single_face.mp4"].map((f) => path.join(SHARED, f));
    runPython(["video", dir, clips.join("+"), "24", "3"]);
    ref = JSON.parse(readFileSync(path.join(dir, "frames.json"), "utf8"));
  });

  test("default smoothing: same track ids, smoothed and raw probabilities within 0.02 on 24 frames", async () => {
    const rec = await EmotionRecognizer.create({ runningMode: "video", threads: 2 });
    assert.equal(rec.spec.name, ref.model, "the SDK's default model is the one Python runs here");
    let r;
    try {
      r = await videoParity(rec, ref, dir);
    } finally {
      await rec.close();
    }
    console.log(`node video parity: ${ref.frames.length} frames, ${r.faces} faces, tracks ${r.tracks}, max prob diff ${r.worst.toFixed(4)}, max box/landmark diff ${r.px.toFixed(2)} px`);
    assert.ok(r.px <= 2, `boxes or landmarks ${r.px} px apart`);
    assert.ok(r.tracks.length >= 2, "the scene cut between the two clips starts a new track in both");
    assert.ok(r.faces >= 18, `expected a face in most frames, got ${r.faces}`);
    assert.ok(r.worst <= 0.02, `smoothed/raw probability difference ${r.worst}`);
  });

  test("the default schedule (whole frame, windows, predicted boxes) and reading budget match Python's on a 1080p crowd", async () => {
    const crowd = path.join(tmp, "crowd");
    runPython(["video", crowd, path.join(SHARED, "media/videos/crowd_walking.mp4"), "14", "1"]);
    const want = JSON.parse(readFileSync(path.join(crowd, "frames.json"), "utf8"));
    const rec = await EmotionRecognizer.create({ runningMode: "video", threads: 2 });
    const calls = { full: 0, regions: 0 };
    const det = rec.detector, detect = det.detect.bind(det), regions = det.detectRegions.bind(det);
    det.detect = (...a) => { calls.full++; return detect(...a); };
    det.detectRegions = (...a) => { calls.regions++; return regions(...a); };
    let r;
    try {
      r = await videoParity(rec, want, crowd);
    } finally {
      await rec.close();
    }
    // 14 frames at 25 fps: scans at 0 and 0.52 s, windows every 2nd frame between, predicted boxes on the rest
    assert.deepEqual(calls, { full: 2, regions: 6 }, JSON.stringify(calls));
    console.log(`node crowd parity: ${want.frames.length} frames, ${r.faces} faces, ${r.held} held, max prob diff ${r.worst.toFixed(4)}, max box/landmark diff ${r.px.toFixed(2)} px`);
    assert.ok(r.px <= 2, `boxes or landmarks ${r.px} px apart`);
    assert.ok(r.faces >= 60 && r.tracks.length >= 4, `expected a crowd, got ${r.faces} faces, ${r.tracks.length} tracks`);
    assert.ok(r.held >= r.faces / 3, `at about 30 readings/s most of ~6 faces a frame keep their reading; held ${r.held} of ${r.faces}`);
    assert.ok(r.worst <= 0.02, `smoothed/raw probability difference ${r.worst}`);
  });

  test("classifyPerS 0 reads every face and detectEvery 1 scans every frame; a negative rate is refused", async () => {
    await assert.rejects(EmotionRecognizer.create({ runningMode: "video", classifyPerS: -1 }),
      (e) => e.name === "ValueError" && /classifyPerS must be in \[0, 10000\]/.test(e.message));
    const rec = await EmotionRecognizer.create({ runningMode: "video", classifyPerS: 0, detectEvery: 1, threads: 2 });
    let scans = 0;
    const det = rec.detector, detect = det.detect.bind(det);
    det.detect = (...a) => { scans++; return detect(...a); };
    try {
      const img = await readImage(path.join(SHARED, "media/images/multi_face.jpg"));
      for (let i = 0; i < 4; i++) {
        const got = await rec.detectForVideo(img, 40 * i);
        assert.ok(got.faces.length >= 4 && got.faces.every((f) => f.read === true), `frame ${i}: every face read`);
      }
    } finally {
      await rec.close();
    }
    assert.equal(scans, 4, "detectEvery 1 scans the whole frame on every frame");
  });
});

describe("alignment keeps the spec's roll dead band, as Python does", { skip: SKIP_SHARED }, () => {
  test("a face turned 30°: the SDK's crops equal Python's (within 1 grey level), probabilities within 0.02", async () => {
    const dir = path.join(tmp, "turned");
    runPython(["turned", dir, path.join(SHARED, "media/images/single_face.jpg"), "30"]);
    const ref = JSON.parse(readFileSync(path.join(dir, "turned.json"), "utf8"));
    const rec = await EmotionRecognizer.create({ threads: 2 });
    try {
      const band = rec.spec.alignment.roll_dead_band_deg;
      assert.equal(rec.spec.name, ref.model);
      assert.equal(band, 15);
      assert.equal(band, ref.roll_dead_band_deg);
      const raw = await readImage(path.join(dir, "turned.png"));
      const bgr = { data: new Uint8Array(raw.width * raw.height * 3), width: raw.width, height: raw.height, channels: 3 };
      for (let i = 0; i < raw.width * raw.height; i++) {
        for (let c = 0; c < 3; c++) bgr.data[3 * i + c] = raw.data[4 * i + 2 - c];
      }
      const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
      const meanDiff = (a, b) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;
      assert.ok(ref.faces.length >= 1);
      for (const face of ref.faces) {
        assert.ok(Math.abs(face.roll_deg) > band + 10, `the face should be turned well beyond the band, reads ${face.roll_deg}°`);
        const crop = rec.classifier.align(bgr, [face.landmarks])[0];
        assert.ok(maxDiff(crop.data, face.crop) <= 1, `crop differs from Python's by ${maxDiff(crop.data, face.crop)}`);
        const full = alignFace(bgr, face.landmarks, rec.spec.alignment.points_norm, rec.spec.input.size_hw);
        assert.ok(maxDiff(full.data, face.crop_full) <= 1, "the fully aligned crop (band 0) matches Python's too");
        assert.ok(meanDiff(crop.data, full.data) > 10, "the dead band changes the crop");
      }
      const got = await rec.detect(raw);
      const r = parityReport([["turned.png", got.faces, ref.result.faces]], ref.labels ?? rec.labels);
      assert.ok(r.faces >= 1 && r.missing === 0 && r.extra === 0 && r.maxProbDiff <= 0.02 && r.topAgreement >= 0.99, JSON.stringify(r));
    } finally {
      await rec.close();
    }
  });
});

describe("image operations against OpenCV", () => {
  test("resizeLinear equals cv2.resize INTER_LINEAR bit for bit (the detector's enlarged windows)", () => {
    const out = path.join(tmp, "resize.json");
    runPython(["resize", out]);
    for (const c of JSON.parse(readFileSync(out, "utf8"))) {
      const [h, w, bytes] = c.src;
      const got = resizeLinear({ data: Uint8Array.from(bytes), width: w, height: h, channels: 3 }, c.dst_wh[0], c.dst_wh[1]);
      const diff = got.data.reduce((m, v, i) => Math.max(m, Math.abs(v - c.out[i])), 0);
      assert.equal(diff, 0, `${w}x${h} -> ${c.dst_wh}: ${diff} grey levels apart`);
    }
  });
});
