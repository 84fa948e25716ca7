// Web/Node SDK benchmark, beside the Python pipeline in the same run: download size, time to
// first result and images/s on a 640x480 one-face image, in Node (onnxruntime-node), headless
// Chromium (onnxruntime-web WASM, SIMD, 2 threads) and Python (onnxruntime, 2 threads).
//
// Usage (after `cd sdk/web && npm ci && npm run build`):
//   node benchmarks/bench_sdk.mjs [--seconds 6] [--fer 1000] [--out benchmarks/results/sdk.json]
// --fer N: also classify the first N FER-2013 PrivateTest crops in Chromium (WASM) with the int8
// default and its fp32 reference, beside Python: accuracy and top-emotion agreement, the
// measurement that picks the browser's default variant.
// Speeds from one run compare with each other (ratios), not across machines.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SDK = path.join(ROOT, "sdk/web");
const require = createRequire(path.join(SDK, "package.json"));
const args = Object.fromEntries(process.argv.slice(2).join(" ").split("--").filter(Boolean).map((a) => a.trim().split(/\s+/)));
const SECONDS = Number(args.seconds ?? 6);
const FER = Number(args.fer ?? 1000);
const OUT = args.out ?? path.join(ROOT, "benchmarks/results/sdk.json");
const PHOTO = path.resolve(ROOT, "../shared/data/media/images/single_face.jpg");
const { EmotionRecognizer, readImage } = await import(path.join(SDK, "dist/node.mjs"));
const { serve } = await import(path.join(SDK, "scripts/serve.mjs"));
const { launch } = await import(path.join(SDK, "test/helpers.mjs"));
const sharp = require("sharp");
const manifest = JSON.parse(readFileSync(path.join(SDK, "dist/models/manifest.json"), "utf8"));
const tmp = mkdtempSync(path.join(os.tmpdir(), "affectlens-bench-"));

// The test image: the shared one-face photo fitted into 640x480 (PNG, lossless for every runtime).
const png = path.join(tmp, "face640x480.png");
await sharp(PHOTO, { ignoreIcc: true }).resize(640, 480, { fit: "contain", background: "#ffffff" }).png().toFile(png);

function sizes(model) {
  const m = manifest.models.find((x) => x.name === model);
  const files = ["browser.mjs", "ort/ort-wasm-simd-threaded.mjs", "ort/ort-wasm-simd-threaded.wasm", "models/manifest.json",
    `models/${manifest.detector.file}`, `models/${m.spec}`, `models/${m.file}`];
  let raw = 0, gz = 0;
  for (const f of files) {
    const b = readFileSync(path.join(SDK, "dist", f));
    raw += b.length;
    gz += gzipSync(b, { level: 6 }).length;
  }
  const mb = (v) => Math.round(v / 1e5) / 10;
  return { model, files, mb: mb(raw), gzip_mb: mb(gz), model_mb: mb(statSync(path.join(SDK, "dist/models", m.file)).size) };
}

async function rate(fn, seconds = SECONDS) {
  await fn();
  const times = [];
  const start = performance.now();
  while (times.length < 5 || performance.now() - start < seconds * 1000) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return Math.round(10000 / times[times.length >> 1]) / 10;
}

async function nodeRun(model) {
  const t0 = performance.now();
  const rec = await EmotionRecognizer.create({ model, threads: 2 });
  const img = await readImage(png);
  const first = await rec.detect(img);
  const ttfr = performance.now() - t0;
  const ips = await rate(() => rec.detect(img));
  await rec.close();
  return { model: rec.spec.name, time_to_first_result_ms: Math.round(ttfr), images_per_s: ips, faces: first.faces.length };
}

async function chromiumRun(server, model) {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(`${server.url}/demo/blank.html`);
    const b64 = readFileSync(png).toString("base64");
    return await page.evaluate(async ([b64, model, seconds]) => {
      const t0 = performance.now();
      const { EmotionRecognizer } = await import("/dist/browser.mjs");
      const rec = await EmotionRecognizer.create({ model, threads: 2 });
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }), { colorSpaceConversion: "none" });
      const first = await rec.detect(bitmap);
      const ttfr = performance.now() - t0;
      const times = [];
      const start = performance.now();
      while (times.length < 5 || performance.now() - start < seconds * 1000) {
        const t = performance.now();
        await rec.detect(bitmap);
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      return { model: rec.spec.name, time_to_first_result_ms: Math.round(ttfr), images_per_s: Math.round(10000 / times[times.length >> 1]) / 10,
        faces: first.faces.length, threads: crossOriginIsolated ? 2 : 1 };
    }, [b64, model, SECONDS]);
  } finally {
    await browser.close();
  }
}

function pythonRun(model) {
  const code = `
import json, sys, time
t0 = time.perf_counter()
from affectlens import EmotionRecognizer
rec = EmotionRecognizer(model=sys.argv[2], threads=2)
faces = rec.predict(sys.argv[1])
ttfr = time.perf_counter() - t0
from affectlens.imageio import load_image
img = load_image(sys.argv[1]); rec.predict_bgr(img)
times, start = [], time.perf_counter()
while len(times) < 5 or time.perf_counter() - start < float(sys.argv[3]):
    t = time.perf_counter(); rec.predict_bgr(img); times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"model": rec.classifier.spec.name, "time_to_first_result_ms": round(ttfr * 1000),
                  "images_per_s": round(1 / times[len(times) // 2], 1), "faces": len(faces)}))`;
  const py = process.env.AFFECTLENS_PYTHON || path.join(ROOT, ".venv/bin/python");
  const out = execFileSync(py, ["-c", code, png, model, String(SECONDS)], {
    env: { ...process.env, PYTHONPATH: path.join(ROOT, "src") }, encoding: "utf8" });
  return JSON.parse(out.trim().split("\n").pop());
}

/** FER-2013 crops through Python (library, native ONNX Runtime) and Chromium (WASM), per model. */
async function ferRun(server, models) {
  const dir = path.join(tmp, "fer");
  const code = `
import json, sys, numpy as np
from pathlib import Path
from affectlens.classifier import EmotionClassifier
from affectlens.datasets.fer2013 import load_fer2013
from affectlens.labels import EMOTIONS
n, out = int(sys.argv[1]), Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
split = load_fer2013(Path(sys.argv[3]), ("PrivateTest",))["PrivateTest"]
split.images[:n].tofile(out / "crops.u8")
res = {"labels": [EMOTIONS[i] for i in split.labels[:n]], "python": {}}
for m in sys.argv[4:]:
    clf = EmotionClassifier(m, threads=2)
    res["python"][m] = [clf.labels[i] for i in clf.classify_crops(split.images[:n]).argmax(1)]
(out / "ref.json").write_text(json.dumps(res))`;
  const py = process.env.AFFECTLENS_PYTHON || path.join(ROOT, ".venv/bin/python");
  execFileSync(py, ["-c", code, String(FER), dir, path.resolve(ROOT, "../shared/data/fer2013"), ...models],
    { env: { ...process.env, PYTHONPATH: path.join(ROOT, "src") }, encoding: "utf8" });
  const ref = JSON.parse(readFileSync(path.join(dir, "ref.json"), "utf8"));
  const crops = readFileSync(path.join(dir, "crops.u8")).toString("base64");
  const browser = await launch();
  const rows = [];
  try {
    const page = await browser.newPage();
    await page.goto(`${server.url}/demo/blank.html`);
    for (const m of models) {
      const t0 = performance.now();
      const top = await page.evaluate(async ([b64, model]) => {
        const { EmotionRecognizer } = await import("/dist/browser.mjs");
        const rec = await EmotionRecognizer.create({ model, threads: 2 });
        const all = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const [h, w] = [48, 48];
        const out = [];
        for (let i = 0; i < all.length / (h * w); i += 64) {
          const batch = [];
          for (let k = i; k < Math.min(i + 64, all.length / (h * w)); k++) batch.push({ data: all.subarray(k * h * w, (k + 1) * h * w), width: w, height: h, channels: 1 });
          for (const p of await rec.classifier.classifyCrops(batch)) out.push(rec.labels[p.indexOf(Math.max(...p))]);
        }
        await rec.close();
        return out;
      }, [crops, m]);
      const ms = performance.now() - t0;
      const acc = (pred) => pred.filter((p, i) => p === ref.labels[i]).length / pred.length;
      rows.push({ model: m, faces: top.length, chromium_accuracy: acc(top), python_accuracy: acc(ref.python[m]),
        agreement_with_python: top.filter((p, i) => p === ref.python[m][i]).length / top.length,
        chromium_faces_per_s: Math.round(top.length / (ms / 1000)) });
    }
  } finally {
    await browser.close();
  }
  return rows;
}

const server = await serve();
const web = manifest.web_default_model ?? manifest.default_model;
const models = [...new Set([web, manifest.default_model])];
const result = {
  machine: `${os.cpus()[0].model}, ${os.cpus().length} cores`, load_average_1min: os.loadavg()[0], seconds_per_figure: SECONDS, image: "single_face.jpg fitted into 640x480",
  download: models.map(sizes), chromium: [], node: [], python: [],
};
for (const m of models) {
  result.chromium.push(await chromiumRun(server, m));
  result.node.push(await nodeRun(m));
  result.python.push(pythonRun(m));
}
if (FER > 0 && existsSync(path.resolve(ROOT, "../shared/data/fer2013"))) result.fer2013_private_test = await ferRun(server, models);
await server.close();
rmSync(tmp, { recursive: true, force: true });
console.log("| runtime | model | time to first result (ms) | images/s (640x480, 1 face) |\n|---|---|---|---|");
for (const k of ["chromium", "node", "python"]) {
  for (const r of result[k]) console.log(`| ${k} | ${r.model} | ${r.time_to_first_result_ms} | ${r.images_per_s} |`);
}
for (const r of result.fer2013_private_test ?? []) {
  console.log(`FER-2013 PrivateTest first ${r.faces}: ${r.model} accuracy Chromium ${(100 * r.chromium_accuracy).toFixed(2)}%, ` +
    `Python ${(100 * r.python_accuracy).toFixed(2)}%, same top emotion ${(100 * r.agreement_with_python).toFixed(2)}%`);
}
for (const d of result.download) console.log(`browser download with ${d.model}: ${d.mb} MB (${d.gzip_mb} MB gzip), model file ${d.model_mb} MB`);
writeFileSync(OUT, JSON.stringify(result, null, 1) + "\n");
console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
