// Shared helpers of the SDK tests: paths, the Python interpreter, reference runs, face matching.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const PKG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const REPO = path.resolve(PKG, "../..");
/** The shared public data, `../shared/data` from the repository root (as tests/conftest.py). */
export const SHARED = path.resolve(REPO, "../shared/data");
export const HAVE_SHARED = existsSync(path.join(SHARED, "media/images"));
export const SKIP_SHARED = HAVE_SHARED ? false : `shared data not found at ${SHARED}`;

/** The real photos the parity tests use: media/images and the group photos of media/detection. */
export function parityImages() {
  const list = (dir, re) => readdirSync(path.join(SHARED, dir)).filter((f) => re.test(f)).sort().map((f) => path.join(SHARED, dir, f));
  return [...list("media/images", /\.(jpe?g|png)$/i), ...list("media/detection", /\.jpe?g$/i)];
}

export function python() {
  if (process.env.AFFECTLENS_PYTHON) return process.env.AFFECTLENS_PYTHON;
  const venv = path.join(REPO, ".venv/bin/python");
  return existsSync(venv) ? venv : "python3";
}

/** Run test/python_reference.py with the repository's src first on the path. */
export function runPython(args, env = {}) {
  return execFileSync(python(), [path.join(PKG, "test/python_reference.py"), ...args], {
    env: { ...process.env, OMP_NUM_THREADS: "1", ...env,
      PYTHONPATH: [path.join(REPO, "src"), process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) },
    encoding: "utf8", stdio: ["ignore", "pipe", "inherit"],
  });
}

export function iou(a, b) {
  const inter = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])) * Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

/** Pairs [jsFace, pyFace] matched greedily by IoU (>= 0.5); unmatched faces are returned apart. */
export function matchFaces(js, py) {
  const cand = [];
  js.forEach((a, i) => py.forEach((b, j) => { const v = iou(a.bbox, b.bbox); if (v >= 0.5) cand.push([v, i, j]); }));
  cand.sort((x, y) => y[0] - x[0]);
  const ui = new Set(), uj = new Set(), pairs = [];
  for (const [, i, j] of cand) if (!ui.has(i) && !uj.has(j)) { ui.add(i); uj.add(j); pairs.push([js[i], py[j]]); }
  return { pairs, jsOnly: js.filter((_, i) => !ui.has(i)), pyOnly: py.filter((_, j) => !uj.has(j)) };
}

/** Largest differences of one matched pair: box and landmark pixels, probabilities. */
export function diffs(a, b, labels, key = "scores") {
  const box = Math.max(...a.bbox.map((v, k) => Math.abs(v - b.bbox[k])));
  const lm = Math.max(...a.landmarks.flatMap((p, k) => [Math.abs(p[0] - b.landmarks[k][0]), Math.abs(p[1] - b.landmarks[k][1])]));
  const prob = Math.max(...labels.map((l) => Math.abs(a[key][l] - b[key][l])));
  return { box, lm, prob, same: a.emotion === b.emotion };
}

/**
 * The parity criteria of issue 21 over all matched faces: the same faces found, boxes within
 * 2 px, probabilities within 0.02, the same top emotion on >= 99% of faces.
 */
export function parityReport(perImage, labels) {
  const rows = [];
  let missing = 0, extra = 0;
  for (const [name, js, py] of perImage) {
    const m = matchFaces(js, py);
    // A face the other side lacks counts only when clearly above the detection threshold on that side.
    missing += m.pyOnly.filter((f) => f.det_score > 0.65).length;
    extra += m.jsOnly.filter((f) => f.det_score > 0.65).length;
    for (const [a, b] of m.pairs) rows.push({ name, ...diffs(a, b, labels) });
  }
  const n = rows.length;
  return {
    faces: n, missing, extra,
    maxBoxPx: Math.max(0, ...rows.map((r) => r.box)), maxLandmarkPx: Math.max(0, ...rows.map((r) => r.lm)),
    maxProbDiff: Math.max(0, ...rows.map((r) => r.prob)),
    topAgreement: n ? rows.filter((r) => r.same).length / n : 1,
  };
}

/** Debian's Chromium and the flags every SDK browser run uses (no downloads, no background traffic). */
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run"];

export async function launch(extraArgs = []) {
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_FLAGS, ...extraArgs] });
}
