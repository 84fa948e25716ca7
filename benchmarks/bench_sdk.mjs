// Web/Node SDK benchmark, beside the Python pipeline in the same run: download size, time to
// first result and images/s on a 640x480 one-face image, in Node (onnxruntime-node), headless
// Chromium (onnxruntime-web WASM, SIMD, 2 threads) and Python (onnxruntime, 2 threads).
//
// Usage (after `cd sdk/web && npm ci && npm run build`):
//   node benchmarks/bench_sdk.mjs [--seconds 6] [--out benchmarks/results/sdk.json]
// Speeds from one run compare with each other (ratios), not across machines.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
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
await server.close();
rmSync(tmp, { recursive: true, force: true });
console.log("| runtime | model | time to first result (ms) | images/s (640x480, 1 face) |\n|---|---|---|---|");
for (const k of ["chromium", "node", "python"]) {
  for (const r of result[k]) console.log(`| ${k} | ${r.model} | ${r.time_to_first_result_ms} | ${r.images_per_s} |`);
}
for (const d of result.download) console.log(`browser download with ${d.model}: ${d.mb} MB (${d.gzip_mb} MB gzip), model file ${d.model_mb} MB`);
writeFileSync(OUT, JSON.stringify(result, null, 1) + "\n");
console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
