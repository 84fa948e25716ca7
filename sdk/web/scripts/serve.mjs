// A static file server for the demo and the browser tests: 127.0.0.1 only, cross-origin
// isolation headers (so onnxruntime-web may use WASM threads), and a log of every request.
// Usage: node scripts/serve.mjs [PORT]   then open http://127.0.0.1:PORT/demo/
import { createReadStream, statSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
  ".json": "application/json", ".wasm": "application/wasm", ".onnx": "application/octet-stream", ".map": "application/json" };

/** Serve the package folder; resolves to { url, requests, close() }. */
export function serve(port = 0, root = ROOT) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    requests.push(url.pathname);
    const file = path.join(root, decodeURIComponent(url.pathname).replace(/\/$/, "/index.html"));
    let ok = file.startsWith(root + path.sep);
    try { ok = ok && statSync(file).isFile(); } catch { ok = false; }
    const headers = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
      "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-store" };
    if (!ok) { res.writeHead(404, headers); res.end("not found"); return; }
    res.writeHead(200, { ...headers, "Content-Type": TYPES[path.extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve({
    url: `http://127.0.0.1:${server.address().port}`, requests, close: () => new Promise((r) => server.close(r)),
  })));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const s = await serve(Number(process.argv[2] || 8765));
  console.log(`AffectLens demo: ${s.url}/demo/  (Ctrl+C to stop)`);
}
