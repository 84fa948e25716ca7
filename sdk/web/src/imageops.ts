/**
 * Pixel operations ported from the OpenCV functions the Python pipeline calls, so the browser,
 * Node and Python feed the models the same numbers: `cv2.resize(..., INTER_AREA)`,
 * `cv2.warpAffine(..., INTER_LINEAR, BORDER_REPLICATE)` and `cv2.cvtColor(BGR2GRAY)`.
 * Images are interleaved uint8 arrays, row-major, `channels` values per pixel.
 */

/** An interleaved uint8 image. */
export interface Image8 {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** Round half to even, as OpenCV's `cvRound` / `saturate_cast` do. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v); // halves go up: r - v is exactly 0.5 only for them
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function sat8(v: number): number {
  const r = roundHalfEven(v);
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

/** `cv2.cvtColor(bgr, COLOR_BGR2GRAY)`: OpenCV's 14-bit fixed-point weights. */
export function bgrToGray(img: Image8): Image8 {
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  const s = img.data;
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    out[i] = (s[j] * 1868 + s[j + 1] * 9617 + s[j + 2] * 4899 + 8192) >> 14;
  }
  return { data: out, width: img.width, height: img.height, channels: 1 };
}

interface AreaTab { si: Int32Array; di: Int32Array; alpha: Float32Array; }

function areaTab(ssize: number, dsize: number, cn: number, scale: number): AreaTab {
  const si: number[] = [], di: number[] = [], alpha: number[] = [];
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale;
    const fsx2 = fsx1 + scale;
    const cell = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1);
    let sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) { di.push(dx * cn); si.push((sx1 - 1) * cn); alpha.push((sx1 - fsx1) / cell); }
    for (let sx = sx1; sx < sx2; sx++) { di.push(dx * cn); si.push(sx * cn); alpha.push(1.0 / cell); }
    if (fsx2 - sx2 > 1e-3) {
      di.push(dx * cn); si.push(sx2 * cn); alpha.push(Math.min(Math.min(fsx2 - sx2, 1), cell) / cell);
    }
  }
  return { si: Int32Array.from(si), di: Int32Array.from(di), alpha: Float32Array.from(alpha) };
}

/**
 * `cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA)` for downscaling.
 *
 * @throws RangeError when asked to upscale (the pipeline never does).
 */
export function resizeArea(src: Image8, width: number, height: number): Image8 {
  const { width: sw, height: sh, channels: cn } = src;
  if (width === sw && height === sh) return src;
  const scaleX = sw / width, scaleY = sh / height;
  if (scaleX < 1 || scaleY < 1) throw new RangeError(`resizeArea only downscales, got ${sw}x${sh} -> ${width}x${height}`);
  const ix = Math.round(scaleX), iy = Math.round(scaleY);
  if (Math.abs(scaleX - ix) < Number.EPSILON && Math.abs(scaleY - iy) < Number.EPSILON) {
    return resizeAreaFast(src, width, height, ix, iy);
  }
  const xt = areaTab(sw, width, cn, scaleX);
  const yt = areaTab(sh, height, 1, scaleY);
  const rowLen = width * cn;
  const out = new Uint8Array(rowLen * height);
  const buf = new Float32Array(rowLen);
  const sum = new Float32Array(rowLen);
  const s = src.data;
  let prev = yt.di[0];
  for (let j = 0; j < yt.si.length; j++) {
    const beta = yt.alpha[j], dy = yt.di[j], rowOfs = yt.si[j] * sw * cn;
    buf.fill(0);
    const nk = xt.si.length;
    if (cn === 3) { // the frames' case, unrolled: the same sums in the same order
      for (let k = 0; k < nk; k++) {
        const a = xt.alpha[k], so = rowOfs + xt.si[k], d = xt.di[k];
        buf[d] += s[so] * a; buf[d + 1] += s[so + 1] * a; buf[d + 2] += s[so + 2] * a;
      }
    } else {
      for (let k = 0; k < nk; k++) {
        const a = xt.alpha[k], so = rowOfs + xt.si[k], d = xt.di[k];
        for (let c = 0; c < cn; c++) buf[d + c] += s[so + c] * a;
      }
    }
    if (dy !== prev) {
      const o = prev * rowLen;
      for (let x = 0; x < rowLen; x++) { out[o + x] = sat8(sum[x]); sum[x] = beta * buf[x]; }
      prev = dy;
    } else {
      for (let x = 0; x < rowLen; x++) sum[x] += beta * buf[x];
    }
  }
  const o = prev * rowLen;
  for (let x = 0; x < rowLen; x++) out[o + x] = sat8(sum[x]);
  return { data: out, width, height, channels: cn };
}

/**
 * `cv2.resize(src, (width, height), interpolation=cv2.INTER_LINEAR)` for 8-bit images, bit for bit:
 * OpenCV's pixel-centre mapping, its float32 weights rounded half to even into 11-bit fixed point,
 * columns clamped at the borders (weight and index), rows clamped by index only (used to enlarge
 * small detector windows).
 */
export function resizeLinear(src: Image8, width: number, height: number): Image8 {
  const { width: sw, height: sh, channels: cn } = src;
  if (width === sw && height === sh) return src;
  const SCALE = 2048;
  const tab = (dn: number, sn: number, rows: boolean) => {
    const ofs = new Int32Array(dn), a0 = new Int32Array(dn), a1 = new Int32Array(dn);
    const scale = sn / dn;
    for (let d = 0; d < dn; d++) {
      let f = Math.fround((d + 0.5) * scale - 0.5);
      let si = Math.floor(f);
      f -= si;
      if (!rows) { // OpenCV keeps a row's fraction at the borders and clamps the row index instead
        if (si < 0) { f = 0; si = 0; }
        if (si >= sn - 1) { f = 0; si = sn - 1; }
      }
      ofs[d] = si;
      a0[d] = roundHalfEven(Math.fround(Math.fround(1 - f) * SCALE));
      a1[d] = roundHalfEven(Math.fround(f * SCALE));
    }
    return { ofs, a0, a1 };
  };
  const xt = tab(width, sw, false), yt = tab(height, sh, true);
  const rowLen = width * cn;
  const rowOf = (y: number) => {
    const row = new Int32Array(rowLen);
    const base = Math.min(Math.max(y, 0), sh - 1) * sw * cn;
    for (let x = 0; x < width; x++) {
      const s0 = base + xt.ofs[x] * cn, s1 = base + Math.min(xt.ofs[x] + 1, sw - 1) * cn;
      for (let c = 0; c < cn; c++) row[x * cn + c] = src.data[s0 + c] * xt.a0[x] + src.data[s1 + c] * xt.a1[x];
    }
    return row;
  };
  const out = new Uint8Array(rowLen * height);
  for (let y = 0; y < height; y++) {
    const r0 = rowOf(yt.ofs[y]), r1 = rowOf(yt.ofs[y] + 1);
    const b0 = yt.a0[y], b1 = yt.a1[y];
    for (let x = 0; x < rowLen; x++) {
      const v = (((b0 * (r0[x] >> 4)) >> 16) + ((b1 * (r1[x] >> 4)) >> 16) + 2) >> 2;
      out[y * rowLen + x] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { data: out, width, height, channels: cn };
}

/** OpenCV's integer-factor INTER_AREA path (block means; factor 2 rounds half up like its SIMD code). */
function resizeAreaFast(src: Image8, width: number, height: number, kx: number, ky: number): Image8 {
  const { width: sw, channels: cn } = src;
  const out = new Uint8Array(width * height * cn);
  const s = src.data;
  const area = kx * ky;
  const inv = Math.fround(1 / area);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < cn; c++) {
        let sum = 0;
        for (let dy = 0; dy < ky; dy++) {
          const row = (y * ky + dy) * sw;
          for (let dx = 0; dx < kx; dx++) sum += s[(row + x * kx + dx) * cn + c];
        }
        out[(y * width + x) * cn + c] = area === 4 ? (sum + 2) >> 2 : sat8(Math.fround(sum * inv));
      }
    }
  }
  return { data: out, width, height, channels: cn };
}

/** Inverse of a 2x3 affine matrix, as `cv2.invertAffineTransform`. */
export function invertAffine(m: number[]): number[] {
  let d = m[0] * m[4] - m[1] * m[3];
  d = d !== 0 ? 1 / d : 0;
  const a11 = m[4] * d, a22 = m[0] * d, a12 = -m[1] * d, a21 = -m[3] * d;
  return [a11, a12, -a11 * m[2] - a12 * m[5], a21, a22, -a21 * m[2] - a22 * m[5]];
}

/**
 * `cv2.warpAffine(src, m, (width, height), flags=INTER_LINEAR, borderMode=BORDER_REPLICATE)`:
 * `m` maps source to destination pixels; each output pixel samples the source bilinearly.
 */
export function warpAffineLinear(src: Image8, m: number[], width: number, height: number): Image8 {
  const { width: sw, height: sh, channels: cn } = src;
  const inv = invertAffine(m);
  const out = new Uint8Array(width * height * cn);
  const s = src.data;
  const fx32 = Math.fround;
  const m0 = fx32(inv[0]), m1 = fx32(inv[1]), m2 = fx32(inv[2]);
  const m3 = fx32(inv[3]), m4 = fx32(inv[4]), m5 = fx32(inv[5]);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sx = fx32(fx32(fx32(m0 * x) + fx32(m1 * y)) + m2);
      const sy = fx32(fx32(fx32(m3 * x) + fx32(m4 * y)) + m5);
      const x0 = Math.floor(sx), y0 = Math.floor(sy);
      const ax = fx32(sx - x0), ay = fx32(sy - y0);
      const xa = Math.min(Math.max(x0, 0), sw - 1), xb = Math.min(Math.max(x0 + 1, 0), sw - 1);
      const ya = Math.min(Math.max(y0, 0), sh - 1), yb = Math.min(Math.max(y0 + 1, 0), sh - 1);
      const p00 = (ya * sw + xa) * cn, p01 = (ya * sw + xb) * cn, p10 = (yb * sw + xa) * cn, p11 = (yb * sw + xb) * cn;
      const o = (y * width + x) * cn;
      for (let c = 0; c < cn; c++) {
        const v00 = s[p00 + c], v01 = s[p01 + c], v10 = s[p10 + c], v11 = s[p11 + c];
        const top = fx32(v00 + fx32(ax * fx32(v01 - v00)));
        const bot = fx32(v10 + fx32(ax * fx32(v11 - v10)));
        out[o + c] = sat8(fx32(top + fx32(ay * fx32(bot - top))));
      }
    }
  }
  return { data: out, width, height, channels: cn };
}
