// Parity of the SDK in Node (onnxruntime-node) with the Python library on real photos and video.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { EmotionRecognizer, readImage } from "../dist/node.mjs";
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
  });

  test("an 8-label FER+ model works from its spec alone", async () => {
    const r = await parityFor("ferplus-vgg48s", parityImages().filter((f) => f.includes("media/images")));
    console.log("node parity (ferplus-vgg48s):", JSON.stringify(r));
    assert.ok(r.faces >= 8 && r.missing === 0 && r.extra === 0, JSON.stringify(r));
    assert.ok(r.maxBoxPx <= 2 && r.maxProbDiff <= 0.02 && r.topAgreement >= 0.99, JSON.stringify(r));
  });
});

describe("Node video mode against Python's VideoAnalyzer", { skip: SKIP_SHARED }, () => {
  const dir = path.join(tmp, "video");
  let ref;
  before(() => {
    runPython(["video", dir, path.join(SHARED, "media/videos/WolfgangLanger_Pexels.mp4"), "24", "3"]);
    ref = JSON.parse(readFileSync(path.join(dir, "frames.json"), "utf8"));
  });

  test("same track ids, smoothed and raw probabilities within 0.02 on 24 frames", async () => {
    const rec = await EmotionRecognizer.create({ runningMode: "video", smoothing: { method: "moving-average", window: 15 }, threads: 2 });
    const idMap = new Map();
    let faces = 0, worst = 0;
    try {
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
          for (const l of ref.labels) {
            worst = Math.max(worst, Math.abs(a.scores[l] - b.scores[l]), Math.abs(a.scores_raw[l] - b.scores_raw[l]));
          }
        }
      }
    } finally {
      await rec.close();
    }
    console.log(`node video parity: ${ref.frames.length} frames, ${faces} faces, max prob diff ${worst.toFixed(4)}`);
    assert.ok(faces >= 18, `expected a face in most frames, got ${faces}`);
    assert.ok(worst <= 0.02, `smoothed/raw probability difference ${worst}`);
  });
});
