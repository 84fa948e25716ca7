// A customer's model folder in the SDK: a real fine-tuned folder (CK+ subset, 1 epoch) made in the
// test run, exported with `affectlens export --model MODEL_DIR --format onnx`, loaded in Node with
// EmotionRecognizer.create({ modelPath }) and compared with `affectlens image --model MODEL_DIR`.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, test } from "node:test";
import { EmotionRecognizer, ModelLoadError, ValueError, emotionColor, fallbackColor, readImage } from "../dist/node.mjs";
import { serve } from "../scripts/serve.mjs";
import { CHROMIUM, PKG, REPO, SKIP_SHARED, launch, parityReport, python } from "./helpers.mjs";

const tmp = mkdtempSync(path.join(os.tmpdir(), "affectlens-custom-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("fallbackColor: one deterministic colour per label, the same as Python's fallback_color", () => {
  // pinned in tests/test_export.py too, so the two implementations cannot drift apart
  assert.equal(fallbackColor("boredom"), "#2eb843");
  assert.equal(fallbackColor("confusion"), "#b82ea8");
  assert.equal(fallbackColor("boredom"), fallbackColor("boredom"));
  assert.notEqual(fallbackColor("boredom"), fallbackColor("confusion"));
  assert.equal(emotionColor("boredom"), "#2eb843");
  assert.equal(emotionColor("boredom", { boredom: "#123456" }), "#123456");
  assert.equal(emotionColor("unreliable"), "#bdbdbd");
  assert.equal(emotionColor("happy"), "#fbc02d");
});

describe("a fine-tuned model folder, exported, in the Node SDK", { skip: SKIP_SHARED }, () => {
  let made;
  before(() => {
    const photos = ["single_face.jpg", "multi_face.jpg", "BWPictureHuman.jpg"].map((f) => path.join(REPO, "../shared/data/media/images", f));
    const out = execFileSync(python(), [path.join(PKG, "test/make_custom_bundle.py"), path.join(tmp, "work"), ...photos], {
      env: { ...process.env, OMP_NUM_THREADS: "1", PYTHONPATH: [path.join(REPO, "src"), process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) },
      encoding: "utf8", stdio: ["ignore", "pipe", "inherit"],
    });
    made = JSON.parse(out.trim().split("\n").pop());
    if (!made.skip) console.log(`custom model folder made, exported and run by Python in ${made.seconds} s`);
  });

  test("same faces, same top labels, probabilities within 0.01 as `affectlens image --model MODEL_DIR`", async (t) => {
    if (made.skip) return t.skip(made.skip);
    const ref = JSON.parse(readFileSync(made.python, "utf8"));
    const spec = JSON.parse(readFileSync(path.join(made.model_dir, "model.json"), "utf8"));
    const rec = await EmotionRecognizer.create({ modelPath: made.bundle, threads: 2 });
    try {
      assert.deepEqual(rec.labels, spec.labels, "labels come from the customer's spec");
      assert.deepEqual(ref.labels, spec.labels);
      assert.ok(rec.labels.includes("contempt") && rec.labels.length === 7, rec.labels.join(","));
      const perImage = [];
      for (const img of ref.images) {
        const got = await rec.detect(await readImage(img.path));
        assert.deepEqual(got.labels, spec.labels);
        perImage.push([path.basename(img.path), got.faces, img.faces]);
      }
      const r = parityReport(perImage, spec.labels);
      console.log("node parity (custom CK+ model):", JSON.stringify(r));
      assert.ok(r.faces >= 10, `expected at least 10 faces (6 of them CK+), matched ${r.faces}`);
      assert.equal(r.missing, 0, "faces Python finds that the SDK misses");
      assert.equal(r.extra, 0, "faces the SDK finds that Python does not");
      assert.ok(r.maxBoxPx <= 2, `box difference ${r.maxBoxPx} px`);
      assert.ok(r.maxProbDiff < 0.01, `probability difference ${r.maxProbDiff}`);
      assert.equal(r.topAgreement, 1, `top labels differ: agreement ${r.topAgreement}`);
    } finally {
      await rec.close();
    }
  });

  test("headless Chromium: the bundle served over HTTP gives the same results as Python", async (t) => {
    if (made.skip) return t.skip(made.skip);
    if (!existsSync(CHROMIUM)) return t.skip(`no Chromium at ${CHROMIUM}`);
    // served from the package folder (same origin as dist/browser.mjs); removed afterwards
    const served = path.join(PKG, "dist", `custom-bundle-${process.pid}`);
    cpSync(made.bundle, served, { recursive: true });
    const server = await serve();
    const browser = await launch();
    try {
      const page = await browser.newPage();
      await page.goto(`${server.url}/demo/blank.html`);
      const labels = await page.evaluate(async (url) => {
        const { EmotionRecognizer } = await import("/dist/browser.mjs");
        window.rec = await EmotionRecognizer.create({ modelUrl: url, threads: 2 });
        return window.rec.labels;
      }, `/dist/${path.basename(served)}/`);
      const ref = JSON.parse(readFileSync(made.python, "utf8"));
      assert.deepEqual(labels, ref.labels);
      const perImage = [];
      for (const img of ref.images) {
        const got = await page.evaluate(async ([data, type]) => {
          const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          const bitmap = await createImageBitmap(new Blob([bytes], { type }),
            { colorSpaceConversion: "none", premultiplyAlpha: "none", imageOrientation: "from-image" });
          return window.rec.detect(bitmap);
        }, [readFileSync(img.path).toString("base64"), img.path.endsWith(".png") ? "image/png" : "image/jpeg"]);
        perImage.push([path.basename(img.path), got.faces, img.faces]);
      }
      const r = parityReport(perImage, ref.labels);
      console.log("chromium parity (custom CK+ model):", JSON.stringify(r));
      assert.ok(r.faces >= 10 && r.missing === 0 && r.extra === 0, JSON.stringify(r));
      assert.ok(r.maxBoxPx <= 2 && r.maxProbDiff < 0.01 && r.topAgreement === 1, JSON.stringify(r));
    } finally {
      await browser.close();
      await server.close();
      rmSync(served, { recursive: true, force: true });
    }
  });

  test("the bundle's manifest, spec or a file: URL load the same model; colours and thresholds from the spec", async (t) => {
    if (made.skip) return t.skip(made.skip);
    const bundleSpec = JSON.parse(readFileSync(path.join(made.bundle, "model.json"), "utf8"));
    const refs = [path.join(made.bundle, "manifest.json"), path.join(made.bundle, "model.json"), pathToFileURL(made.bundle).href];
    for (const ref of refs) {
      const rec = await EmotionRecognizer.create({ modelUrl: ref });
      try {
        assert.equal(rec.spec.sha256, bundleSpec.sha256, ref);
        assert.deepEqual(rec.colors, bundleSpec.palette, ref);
        assert.equal(rec.minQuality, bundleSpec.thresholds.min_quality, ref);
        assert.equal(rec.detector.options.minScore, bundleSpec.thresholds.detector.min_score, ref);
      } finally {
        await rec.close();
      }
    }
    // a threshold changed in the spec is what the recognizer uses (the spec is the contract)
    const edited = path.join(tmp, "edited");
    cpSync(made.bundle, edited, { recursive: true });
    writeFileSync(path.join(edited, "model.json"), JSON.stringify({ ...bundleSpec, thresholds: { min_quality: 0.5, detector: { min_score: 0.8 } } }));
    const rec = await EmotionRecognizer.create({ modelPath: edited });
    assert.equal(rec.minQuality, 0.5);
    assert.equal(rec.detector.options.minScore, 0.8);
    await rec.close();
  });

  test("a tampered bundle, a folder that is no bundle and conflicting options are refused clearly", async (t) => {
    if (made.skip) return t.skip(made.skip);
    const bad = path.join(tmp, "tampered");
    cpSync(made.bundle, bad, { recursive: true });
    cpSync(path.join(made.model_dir, "model-int8.onnx"), path.join(bad, "model.onnx"));
    await assert.rejects(EmotionRecognizer.create({ modelPath: bad }), (e) => e instanceof ModelLoadError && /sha256 mismatch/.test(e.message));
    await assert.rejects(EmotionRecognizer.create({ modelPath: made.model_dir }),
      (e) => e instanceof ModelLoadError && /manifest\.json/.test(e.message));
    const nhwc = path.join(tmp, "nhwc");
    cpSync(made.bundle, nhwc, { recursive: true });
    const spec = JSON.parse(readFileSync(path.join(nhwc, "model.json"), "utf8"));
    writeFileSync(path.join(nhwc, "model.json"), JSON.stringify({ ...spec, input: { ...spec.input, layout: "NHWC" } }));
    await assert.rejects(EmotionRecognizer.create({ modelPath: nhwc }), (e) => e instanceof ModelLoadError && /unsupported input layout 'NHWC'/.test(e.message));
    await assert.rejects(EmotionRecognizer.create({ modelPath: made.bundle, model: "ferplus-vgg48s" }), ValueError);
  });
});
