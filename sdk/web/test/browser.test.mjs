// The SDK in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core): the same
// photos give the same faces as Python, and the demo page (consent, on-device notice, no network
// after the models load) analyses a live fake-camera stream like Python's VideoAnalyzer.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { serve } from "../scripts/serve.mjs";
import { CHROMIUM, SHARED, SKIP_SHARED, launch, matchFaces, parityImages, parityReport, runPython } from "./helpers.mjs";

const SKIP = SKIP_SHARED || (existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium)`);

// The model the photo parity runs in Chromium ("default" = the browser default). Set
// AFFECTLENS_SDK_BROWSER_MODEL=fer-vgg48s-ens-zoom-int8 to measure the int8 file in WASM against
// Python's native int8 (docs/sdk.md: they differ on x86 without VNNI, so that run fails), and
// AFFECTLENS_SDK_PYTHON_MODEL to compare with another Python model (e.g. the fp32 reference).
const BROWSER_MODEL = process.env.AFFECTLENS_SDK_BROWSER_MODEL || "default";

const tmp = mkdtempSync(path.join(os.tmpdir(), "affectlens-browser-"));
let server;
before(async () => { server = await serve(); });
after(async () => { await server?.close(); rmSync(tmp, { recursive: true, force: true }); });

describe("headless Chromium", { skip: SKIP }, () => {
  test("photos: same faces as Python (boxes 2 px, probabilities 0.02, top emotion >= 99%)", async () => {
    const files = parityImages();
    const browser = await launch();
    try {
      const page = await browser.newPage();
      await page.goto(`${server.url}/demo/blank.html`);
      const perImage = [];
      const model = await page.evaluate(async (model) => {
        const { EmotionRecognizer } = await import("/dist/browser.mjs");
        window.rec = await EmotionRecognizer.create({ model, runningMode: "image", threads: 2 });
        return window.rec.spec.name;
      }, BROWSER_MODEL);
      const refFile = path.join(tmp, "ref.json");
      runPython(["images", refFile, ...files], { AFFECTLENS_MODEL: process.env.AFFECTLENS_SDK_PYTHON_MODEL || model });
      const ref = JSON.parse(readFileSync(refFile, "utf8"));
      for (const f of files) {
        const b64 = readFileSync(f).toString("base64");
        const got = await page.evaluate(async ([data, type]) => {
          const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          const bitmap = await createImageBitmap(new Blob([bytes], { type }),
            { colorSpaceConversion: "none", premultiplyAlpha: "none", imageOrientation: "from-image" });
          return window.rec.detect(bitmap);
        }, [b64, f.endsWith(".png") ? "image/png" : "image/jpeg"]);
        const want = ref.images[path.basename(f)];
        assert.deepEqual(got.info.image_size_hw, want.info.image_size_hw, f);
        perImage.push([path.basename(f), got.faces, want.faces]);
      }
      const r = parityReport(perImage, ref.labels);
      console.log(`chromium parity (browser ${model} vs Python ${process.env.AFFECTLENS_SDK_PYTHON_MODEL || model}):`, JSON.stringify(r));
      assert.ok(r.faces >= 20 && r.missing === 0 && r.extra === 0, JSON.stringify(r));
      assert.ok(r.maxBoxPx <= 2, `box difference ${r.maxBoxPx} px`);
      assert.ok(r.maxProbDiff <= 0.02, `probability difference ${r.maxProbDiff}`);
      assert.ok(r.topAgreement >= 0.99, `top-emotion agreement ${r.topAgreement}`);
      assert.ok(r.maxQualityDiff <= 0.02, `quality difference ${r.maxQualityDiff}`);
    } finally {
      await browser.close();
    }
  });

  test("demo: consent first, on-device notice, no request after the models load, live tracks match Python", async () => {
    const N = 10;
    const y4m = path.join(tmp, "camera.y4m");
    runPython(["y4m", y4m, path.join(SHARED, "media/videos/WolfgangLanger_Pexels.mp4"), "48"]);
    const browser = await launch(["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      `--use-file-for-fake-video-capture=${y4m}`]);
    try {
      const page = await browser.newPage();
      const requests = [];
      page.on("request", (r) => requests.push(r.url()));
      // tracks live 5 s here, so a slow, shared CI machine (frames seconds apart) still tracks; Python gets the same
      await page.goto(`${server.url}/demo/?record=${N}&threads=2&maxLostMs=5000`);
      await page.waitForFunction(() => window.affectlensDemo?.ready || window.affectlensDemo?.error, null, { timeout: 90_000 });
      const loaded = requests.length;
      assert.equal(await page.evaluate(() => window.affectlensDemo.error), undefined);
      // notices
      assert.match(await page.textContent("#on-device"), /Processed on this device/);
      assert.match(await page.textContent("#appearance-notice"), /appearance, not inner state/);
      // consent: the camera button is disabled and no stream exists until the box is ticked
      assert.equal(await page.isDisabled("#start"), true);
      assert.equal(await page.evaluate(() => window.affectlensDemo.stream), null);
      await page.check("#consent-check");
      assert.equal(await page.isDisabled("#start"), false);
      await page.click("#start");
      await page.waitForFunction((n) => window.affectlensDemo.frames.length >= n, N, { timeout: 90_000 });
      await page.click("#stop");
      // a photo from this device, analysed in the page by an image-mode recognizer
      await page.setInputFiles("#photo", path.join(SHARED, "media/images/multi_face.jpg"));
      await page.waitForFunction(() => document.querySelectorAll("#bars .face").length >= 5, null, { timeout: 90_000 });
      assert.deepEqual(requests.slice(loaded), [], "network requests after the models loaded");

      // the recorded frames and the page's results, through Python's VideoAnalyzer
      const rec = await page.evaluate(() => {
        const s = window.affectlensDemo;
        const b64 = (u8) => { let s = ""; for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000)); return btoa(s); };
        return s.frames.map((f, i) => {
          const rgb = new Uint8Array(f.width * f.height * 3);
          for (let p = 0, q = 0; p < f.data.length; p += 4, q += 3) { rgb[q] = f.data[p]; rgb[q + 1] = f.data[p + 1]; rgb[q + 2] = f.data[p + 2]; }
          return { timestamp_ms: f.timestamp_ms, width: f.width, height: f.height, rgb: b64(rgb), result: s.results[i] };
        });
      });
      const dir = path.join(tmp, "live");
      mkdirSync(dir, { recursive: true });
      const meta = { max_lost_ms: 5000, frames: rec.map((f, i) => {
        writeFileSync(path.join(dir, `frame_${i}.rgb`), Buffer.from(f.rgb, "base64"));
        return { file: `frame_${i}.rgb`, width: f.width, height: f.height, timestamp_ms: f.timestamp_ms };
      }) };
      writeFileSync(path.join(dir, "frames.json"), JSON.stringify(meta));
      runPython(["frames", dir], { AFFECTLENS_MODEL: await page.evaluate(() => window.affectlensDemo.rec.spec.name) });
      const gaps = rec.slice(1).map((f, i) => Math.round(f.timestamp_ms - rec[i].timestamp_ms));
      console.log("chromium live: ms between analysed frames", gaps.join(" "));
      const py = JSON.parse(readFileSync(path.join(dir, "python.json"), "utf8"));
      const idMap = new Map();
      let faces = 0, tracked = 0, worst = 0;
      rec.forEach((f, i) => {
        const m = matchFaces(f.result.faces, py.frames[i].faces);
        assert.equal(m.jsOnly.length + m.pyOnly.length, 0, `frame ${i}: different faces`);
        for (const [a, b] of m.pairs) {
          faces++;
          assert.equal(a.track_id === null, b.track_id === null, `frame ${i}: tracked in one, not the other`);
          if (a.track_id !== null) {
            tracked++;
            if (!idMap.has(b.track_id)) idMap.set(b.track_id, a.track_id);
            assert.equal(idMap.get(b.track_id), a.track_id, `frame ${i}: track ids diverge`);
          }
          assert.equal(a.read, b.read, `frame ${i}: read by the emotion model in one, held in the other (classifyPerS)`);
          for (const l of py.labels) worst = Math.max(worst, Math.abs(a.scores[l] - b.scores[l]), Math.abs(a.scores_raw[l] - b.scores_raw[l]));
        }
      });
      console.log(`chromium live: ${rec.length} frames, ${faces} faces (${tracked} tracked), max smoothed/raw prob diff ${worst.toFixed(4)}`);
      assert.ok(faces >= N - 1 && tracked >= N - 3, `expected the face in (nearly) every frame, got ${faces} faces, ${tracked} tracked`);
      assert.ok(worst <= 0.02, `probability difference ${worst}`);
    } finally {
      await browser.close();
    }
  });
});
