// Web/Node SDK video mode in Node: frames per second on the shared 1080p crowd clip and the
// talking-head clip with the defaults (Python's detector schedule and reading budget) against
// every-frame detection and reading (detectEvery 1, classifyPerS 0: what the SDK did before it
// had the schedule), alternating runs in one process; the frames are decoded beforehand by the
// Python library (python_reference.py video), so only analysis is timed.
//
// Usage (after `cd sdk/web && npm ci && npm run build`; AFFECTLENS_PYTHON=.venv/bin/python):
//   node benchmarks/bench_sdk_video.mjs [--frames 96] [--repeats 2] [--out benchmarks/results/sdk_video.json]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SDK = path.join(ROOT, "sdk/web");
const args = Object.fromEntries(process.argv.slice(2).join(" ").split("--").filter(Boolean).map((a) => a.trim().split(/\s+/)));
const FRAMES = Number(args.frames ?? 96);
const REPEATS = Number(args.repeats ?? 2);
const OUT = args.out ?? path.join(ROOT, "benchmarks/results/sdk_video.json");
const { EmotionRecognizer } = await import(path.join(SDK, "dist/node.mjs"));
const { runPython } = await import(path.join(SDK, "test/helpers.mjs"));
const tmp = mkdtempSync(path.join(os.tmpdir(), "affectlens-bench-video-"));

async function fps(dir, ref, options) {
  const frames = ref.frames.map((fr) => ({ img: { data: new Uint8Array(readFileSync(path.join(dir, fr.file))), width: fr.width, height: fr.height, format: "rgb" }, ts: fr.timestamp_ms }));
  const rec = await EmotionRecognizer.create({ runningMode: "video", threads: 2, ...options });
  try {
    await rec.detectForVideo(frames[0].img, -1000); // warm-up, then a new stream
    rec.reset();
    const t0 = performance.now();
    let faces = 0;
    for (const f of frames) faces += (await rec.detectForVideo(f.img, f.ts)).faces.length;
    const s = (performance.now() - t0) / 1000;
    return { fps: frames.length / s, faces };
  } finally {
    await rec.close();
  }
}

const clips = { crowd: "media/videos/crowd_walking.mp4", talking_head: "media/videos/WolfgangLanger_Pexels.mp4" };
const result = { machine: `${os.cpus()[0].model.trim()}, ${os.cpus().length} cores`, frames: FRAMES, repeats: REPEATS, clips: {} };
try {
  for (const [name, clip] of Object.entries(clips)) {
    const dir = path.join(tmp, name);
    runPython(["video", dir, path.resolve(ROOT, "../shared/data", clip), String(FRAMES), "1"]);
    const ref = JSON.parse(readFileSync(path.join(dir, "frames.json"), "utf8"));
    const nominal = 1000 / (ref.frames[1].timestamp_ms - ref.frames[0].timestamp_ms);
    const runs = { defaults: [], every_frame: [] };
    for (let r = 0; r < REPEATS; r++) {
      runs.every_frame.push(await fps(dir, ref, { detectEvery: 1, classifyPerS: 0 }));
      runs.defaults.push(await fps(dir, ref, {}));
    }
    const best = (xs) => Math.max(...xs.map((x) => x.fps));
    result.clips[name] = {
      frames: ref.frames.length, nominal_fps: Number(nominal.toFixed(2)),
      defaults_fps: runs.defaults.map((x) => Number(x.fps.toFixed(1))), every_frame_fps: runs.every_frame.map((x) => Number(x.fps.toFixed(1))),
      faces_defaults: runs.defaults[0].faces, faces_every_frame: runs.every_frame[0].faces,
      speedup_best: Number((best(runs.defaults) / best(runs.every_frame)).toFixed(2)),
      x_real_time_defaults_best: Number((best(runs.defaults) / nominal).toFixed(2)),
    };
    console.log(name, JSON.stringify(result.clips[name]));
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
writeFileSync(OUT, JSON.stringify(result, null, 1) + "\n");
console.log(`wrote ${OUT}`);
