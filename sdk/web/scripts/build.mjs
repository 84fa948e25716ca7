// Build the SDK: bundles (esbuild), type declarations (tsc), and dist/models/ with the ONNX
// files, their spec JSONs and manifest.json — all read from the Python package, never retyped.
// The Python interpreter: $AFFECTLENS_PYTHON, else <repo>/.venv/bin/python, else python3.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, "..");
const repo = path.resolve(pkg, "../..");
const dist = path.join(pkg, "dist");

function python() {
  if (process.env.AFFECTLENS_PYTHON) return process.env.AFFECTLENS_PYTHON;
  const venv = path.join(repo, ".venv/bin/python");
  return existsSync(venv) ? venv : "python3";
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(path.join(dist, "models"), { recursive: true });

// 1. Models and manifest, from the Python library's registry (its default, specs, detector bytes).
const py = python();
const out = execFileSync(py, [path.join(here, "export_models.py"), path.join(dist, "models")], {
  env: { ...process.env, PYTHONPATH: [path.join(repo, "src"), process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) },
  encoding: "utf8",
});
process.stdout.write(out);

// 2. Bundles.
const common = { bundle: true, format: "esm", target: "es2022", sourcemap: true, logLevel: "warning" };
await esbuild.build({
  ...common, entryPoints: [path.join(pkg, "src/node.ts")], outfile: path.join(dist, "node.mjs"), platform: "node",
  external: ["onnxruntime-node", "sharp"],
});
await esbuild.build({
  ...common, entryPoints: [path.join(pkg, "src/browser.ts")], outfile: path.join(dist, "browser.mjs"), platform: "browser",
  minify: true,
});
// onnxruntime-web's WASM binary (SIMD + threads), loaded from dist/ort/ at run time.
mkdirSync(path.join(dist, "ort"), { recursive: true });
for (const f of ["ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"]) {
  cpSync(path.join(pkg, "node_modules/onnxruntime-web/dist", f), path.join(dist, "ort", f));
}

// 3. Type declarations (also the type check).
execFileSync(process.execPath, [path.join(pkg, "node_modules/typescript/bin/tsc"), "-p", pkg, "--emitDeclarationOnly", "--outDir", path.join(dist, "types")], { stdio: "inherit" });
console.log(`built ${path.relative(process.cwd(), dist) || "dist"}: node.mjs, browser.mjs, ort/, models/, types/`);
