// Cost of the learned smoother in Node (onnxruntime-node, 1 thread): microseconds per face-frame
// with 1 and 8 tracks per call. Run after `npm run build`: node scripts/bench_learned.mjs
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { loadSmoother } from "../dist/node.mjs";

const MODELS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/models");
const manifest = JSON.parse(readFileSync(path.join(MODELS, "manifest.json"), "utf8"));
const model = manifest.default_int8_model ?? manifest.default_model;
const labels = JSON.parse(readFileSync(path.join(MODELS, `${model}.json`), "utf8")).labels;
const ctx = {
  labels, classifier: model, temporalModels: manifest.temporal_models, resolve: (f) => path.join(MODELS, f),
  readJson: async (ref) => JSON.parse(readFileSync(ref, "utf8")), Tensor: ort.Tensor,
  loadSession: (ref) => ort.InferenceSession.create(readFileSync(ref), { executionProviders: ["cpu"], intraOpNumThreads: 1 }),
  frontalNoseRatio: manifest.quality.frontal_nose_ratio,
};
const lm = [[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.6, 92.4], [70.7, 92.2]];
for (const n of [1, 8]) {
  const sm = await loadSmoother({ method: "learned" }, ctx);
  const faces = Array.from({ length: n }, (_, k) => ({ trackId: k + 1, p: labels.map(() => 1 / labels.length),
    box: [10, 20, 110, 140], landmarks: lm, score: 0.95 }));
  for (let i = 0; i < 50; i++) await sm.smoothFrame(faces, 40 * i);
  const reps = 2000, t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) await sm.smoothFrame(faces, 2000 + 40 * i);
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / reps / n;
  console.log(`${sm.spec.name}: ${us.toFixed(1)} us per face-frame with ${n} track(s) per call`);
}
