/**
 * Node.js entry: onnxruntime-node, models read from the package's `dist/models/` (or any folder),
 * and `readImage()` to decode image files (sharp/libvips: libjpeg-turbo like OpenCV, so the pixels
 * equal the Python library's).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { InvalidImageError, ModelLoadError } from "./errors.js";
import { isRawImage, rawToBgr, RawImage } from "./input.js";
import { setEnvironment } from "./recognizer.js";

export * from "./common.js";

setEnvironment({
  ort: ort as never,
  defaultModelBase: () => fileURLToPath(new URL("./models/", import.meta.url)),
  join: (base, file) => (/^(https?|file):/.test(base) ? new URL(file, base.endsWith("/") ? base : base + "/").href : path.join(base, file)),
  async readBytes(ref) {
    try {
      if (/^https?:/.test(ref)) {
        const res = await fetch(ref);
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        return new Uint8Array(await res.arrayBuffer());
      }
      return new Uint8Array(await readFile(ref.startsWith("file:") ? fileURLToPath(ref) : ref));
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : (e as Error).message;
      throw new ModelLoadError(`${ref}: ${why}`);
    }
  },
  defaultModel: (m) => (m.default_int8_model && x86Int8Path() ? m.default_int8_model : m.default_model),
  sha256: async (bytes) => createHash("sha256").update(bytes).digest("hex"),
  async toImage(input) {
    if (isRawImage(input)) return rawToBgr(input);
    const got = input === null ? "null" : typeof input === "object" ? (input as object).constructor?.name : typeof input;
    throw new InvalidImageError(`expected { data: Uint8Array, width, height, format? } in Node (decode files with readImage()), got ${got}`);
  },
  sessionOptions: (threads) => ({
    executionProviders: ["cpu"], graphOptimizationLevel: "all", logSeverityLevel: 3,
    ...(threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
  }),
});

/** Whether this CPU has an x86 int8 path (AVX2, VNNI or AMX), as Python's `affectlens.cpu`. */
export function x86Int8Path(): boolean {
  if (process.arch !== "x64") return false;
  try {
    const flags = readFileSync("/proc/cpuinfo", "utf8").match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/) ?? [];
    return ["avx2", "avx512_vnni", "avx_vnni", "amx_int8"].some((f) => flags.includes(f));
  } catch {
    return true; // not Linux: every x64 CPU of the last decade has AVX2
  }
}

/**
 * Decode an image file (path or bytes: JPEG, PNG, WebP, TIFF, GIF...) to RGBA pixels for
 * `detect()`, as the Python library reads it: EXIF orientation applied, embedded colour
 * profiles ignored (OpenCV ignores them), at most `maxPixels` pixels.
 *
 * @throws InvalidImageError missing, empty, corrupt or too large.
 */
export async function readImage(source: string | Uint8Array, maxPixels = 100_000_000): Promise<RawImage> {
  const name = typeof source === "string" ? source : "<bytes>";
  if (typeof source !== "string" && !source.length) throw new InvalidImageError(`${name}: empty file (0 bytes)`);
  try {
    const input = typeof source === "string" ? source : Buffer.from(source.buffer, source.byteOffset, source.length);
    const { data, info } = await sharp(input, { ignoreIcc: true, autoOrient: true, limitInputPixels: maxPixels, failOn: "truncated" })
      .ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, format: "rgba" };
  } catch (e) {
    const msg = (e as Error).message;
    if (/no such file|missing/i.test(msg)) throw new InvalidImageError(`${name}: no such file`);
    throw new InvalidImageError(`${name}: cannot decode image (${msg})`);
  }
}
