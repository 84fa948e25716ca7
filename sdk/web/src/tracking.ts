/**
 * Face tracks across video frames: a port of Python's `affectlens.tracking.FaceTracker`
 * (ByteTrack-style; constant-velocity Kalman filter per face; Hungarian IoU matching; time-based).
 * Tracks carry no identity: they link boxes over time, nothing more.
 */
import { ValueError } from "./errors.js";

const FRAME_MS = 1000 / 30;
const MIN_LOW_IOU = 0.5;

/** Options of the tracker (the same names and defaults as Python's `TrackerOptions`). */
export interface TrackerOptions {
  minHighScore: number;
  minLowScore: number;
  minIou: number;
  maxLostMs: number;
  minHits: number;
  iouBuffer: number;
}

export const DEFAULT_TRACKER_OPTIONS: TrackerOptions = {
  minHighScore: 0.6, minLowScore: 0.3, minIou: 0.2, maxLostMs: 1000, minHits: 2, iouBuffer: 0.3,
};

/** Validate tracker options like Python's `TrackerOptions.__post_init__`. */
export function checkTrackerOptions(o: TrackerOptions): TrackerOptions {
  if (!(0 <= o.minLowScore && o.minLowScore <= o.minHighScore && o.minHighScore <= 1)) {
    throw new ValueError(`expected 0 <= minLowScore <= minHighScore <= 1, got minLowScore=${o.minLowScore}, minHighScore=${o.minHighScore}`);
  }
  if (!(o.minIou > 0 && o.minIou < 1)) throw new ValueError(`expected minIou in (0, 1), got ${o.minIou}`);
  if (!(o.maxLostMs >= 0)) throw new ValueError(`expected maxLostMs >= 0, got ${o.maxLostMs}`);
  if (!Number.isInteger(o.minHits) || o.minHits < 1) throw new ValueError(`expected an integer minHits >= 1, got ${o.minHits}`);
  if (!(o.iouBuffer >= 0 && o.iouBuffer <= 2)) throw new ValueError(`expected iouBuffer in [0, 2], got ${o.iouBuffer}`);
  return o;
}

type Mat = number[][];
const eye = (n: number): Mat => Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
const diag = (v: number[]): Mat => v.map((x, i) => v.map((_, j) => (i === j ? x : 0)));
const mul = (a: Mat, b: Mat): Mat => a.map((r) => b[0].map((_, j) => r.reduce((s, x, k) => s + x * b[k][j], 0)));
const tr = (a: Mat): Mat => a[0].map((_, j) => a.map((r) => r[j]));
const add = (a: Mat, b: Mat): Mat => a.map((r, i) => r.map((x, j) => x + b[i][j]));
const mv = (a: Mat, v: number[]): number[] => a.map((r) => r.reduce((s, x, k) => s + x * v[k], 0));

function inv(a: Mat): Mat {
  const n = a.length;
  const m = a.map((r, i) => [...r, ...eye(n)[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[p][c])) p = r;
    [m[c], m[p]] = [m[p], m[c]];
    const d = m[c][c];
    for (let j = 0; j < 2 * n; j++) m[c][j] /= d;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r][c];
      for (let j = 0; j < 2 * n; j++) m[r][j] -= f * m[c][j];
    }
  }
  return m.map((r) => r.slice(n));
}

const toCxcywh = (b: number[]) => [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]];

class Track {
  x: number[];
  P: Mat;
  ts: number;
  lastMatchTs: number;
  hits = 1;

  constructor(readonly id: number, box: number[], ts: number, public confirmed: boolean) {
    const [cx, cy, w, h] = toCxcywh(box);
    this.x = [cx, cy, w, h, 0, 0, 0, 0];
    const s = Math.max(w, h, 1);
    this.P = diag([...Array(4).fill((0.1 * s) ** 2), ...Array(4).fill((0.2 * s) ** 2)]);
    this.ts = ts;
    this.lastMatchTs = ts;
  }

  predict(ts: number): void {
    const dt = Math.max(0, ts - this.ts) / FRAME_MS;
    if (dt === 0) return;
    const F = eye(8);
    for (let i = 0; i < 4; i++) F[i][i + 4] = dt;
    const s = Math.max(this.x[2], this.x[3], 1);
    const q = [...Array(4).fill((0.05 * s) ** 2 * dt), ...Array(4).fill((0.01 * s) ** 2 * dt)];
    this.x = mv(F, this.x);
    this.x[2] = Math.max(this.x[2], 1);
    this.x[3] = Math.max(this.x[3], 1);
    this.P = add(mul(mul(F, this.P), tr(F)), diag(q));
    this.ts = ts;
  }

  correct(box: number[], ts: number): void {
    const z = toCxcywh(box);
    const s = Math.max(z[2], z[3], 1);
    const Pt = this.P.slice(0, 4).map((r) => r.slice(0, 4)); // H P H^T
    const S = add(Pt, diag(Array(4).fill((0.05 * s) ** 2)));
    const PHt = this.P.map((r) => r.slice(0, 4)); // P H^T (8x4)
    const K = mul(PHt, inv(S));
    const innov = z.map((v, i) => v - this.x[i]);
    this.x = this.x.map((v, i) => v + K[i].reduce((a, k, j) => a + k * innov[j], 0));
    const KH = K.map((r) => [...r, 0, 0, 0, 0]);
    const IKH = eye(8).map((r, i) => r.map((v, j) => v - KH[i][j]));
    this.P = mul(IKH, this.P);
    this.lastMatchTs = ts;
    this.hits += 1;
  }

  get box(): number[] {
    const [cx, cy, w, h] = this.x;
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];
  }
}

function enlarge(b: number[], buffer: number): number[] {
  const pw = (b[2] - b[0]) * buffer, ph = (b[3] - b[1]) * buffer;
  return [b[0] - pw, b[1] - ph, b[2] + pw, b[3] + ph];
}

/** IoU of two `xyxy` boxes. */
export function boxIou(a: number[], b: number[]): number {
  const inter = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])) * Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const areaA = (a[2] - a[0]) * (a[3] - a[1]), areaB = (b[2] - b[0]) * (b[3] - b[1]);
  return inter / Math.max(areaA + areaB - inter, 1e-9);
}

/** Optimal one-to-one assignment (Hungarian, as Python's `linear_assignment`): sorted `[row, col]` pairs. */
export function linearAssignment(cost: number[][]): [number, number][] {
  if (!cost.length || !cost[0].length) return [];
  const transposed = cost.length > cost[0].length;
  const c = transposed ? tr(cost) : cost;
  const n = c.length, m = c[0].length;
  const u = new Array(n + 1).fill(0), v = new Array(m + 1).fill(0);
  const p = new Array(m + 1).fill(0), way = new Array(m + 1).fill(0);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Array(m + 1).fill(Infinity);
    const used = new Array(m + 1).fill(false);
    for (;;) {
      used[j0] = true;
      const i0 = p[j0];
      let delta = Infinity, j1 = 0;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const cur = c[i0 - 1][j - 1] - u[i0] - v[j];
        if (cur < minv[j]) { minv[j] = cur; way[j] = j0; }
        if (minv[j] < delta) { delta = minv[j]; j1 = j; }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) { u[p[j]] += delta; v[j] -= delta; } else minv[j] -= delta;
      }
      j0 = j1;
      if (p[j0] === 0) break;
    }
    while (j0) { const j1 = way[j0]; p[j0] = p[j1]; j0 = j1; }
  }
  const pairs: [number, number][] = [];
  for (let j = 1; j <= m; j++) if (p[j]) pairs.push(transposed ? [j - 1, p[j] - 1] : [p[j] - 1, j - 1]);
  return pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** Gives every face a persistent track id across the frames of one stream (ids start at 1). */
export class FaceTracker {
  private tracks: Track[] = [];
  private lastTs: number | null = null;
  private frames = 0;
  private nextId = 1;
  /** Ids of confirmed tracks that ended in the most recent update. */
  endedTrackIds: number[] = [];

  constructor(readonly options: TrackerOptions = DEFAULT_TRACKER_OPTIONS) {
    checkTrackerOptions(options);
  }

  /** Forget every track; ids keep increasing. */
  reset(): void {
    this.tracks = [];
    this.lastTs = null;
    this.frames = 0;
    this.endedTrackIds = [];
  }

  /**
   * Associate one frame's boxes with the tracks.
   *
   * @returns a track id per box (-1 while unconfirmed or unmatched), in input order.
   * @throws ValueError the timestamp is earlier than the previous one.
   */
  update(xyxy: number[][], scores: number[], timestampMs: number): number[] {
    const ts = timestampMs;
    if (this.lastTs !== null && ts < this.lastTs) {
      throw new ValueError(`expected timestamps that do not go backwards, got ${ts} ms after ${this.lastTs} ms; call reset() to start a new stream`);
    }
    const firstFrame = this.lastTs === null;
    this.lastTs = ts;
    this.frames += 1;
    const o = this.options;
    this.endedTrackIds = this.tracks.filter((t) => ts - t.lastMatchTs > o.maxLostMs && t.confirmed).map((t) => t.id);
    this.tracks = this.tracks.filter((t) => ts - t.lastMatchTs <= o.maxLostMs);
    for (const t of this.tracks) t.predict(ts);

    const idx = scores.map((_, i) => i);
    const high = idx.filter((i) => scores[i] >= o.minHighScore);
    const low = idx.filter((i) => scores[i] >= o.minLowScore && scores[i] < o.minHighScore);
    const free = this.tracks.map((_, i) => i);
    const matched = this.associate(xyxy, high, free, o.minIou);
    const confirmedFree = free.filter((i) => this.tracks[i].confirmed);
    const lowMatched = this.associate(xyxy, low, confirmedFree, Math.max(o.minIou, MIN_LOW_IOU));
    for (const ti of lowMatched.values()) free.splice(free.indexOf(ti), 1);
    for (const [d, ti] of lowMatched) matched.set(d, ti);
    if (o.iouBuffer > 0) {
      const rest = high.filter((d) => !matched.has(d));
      for (const [d, ti] of this.associate(xyxy, rest, free, o.minIou, o.iouBuffer)) matched.set(d, ti);
    }
    const ids = new Array(scores.length).fill(-1);
    for (const [d, ti] of matched) {
      const t = this.tracks[ti];
      t.correct(xyxy[d], ts);
      t.confirmed = t.confirmed || t.hits >= o.minHits;
      if (t.confirmed) ids[d] = t.id;
    }
    const kept: Track[] = [];
    this.tracks.forEach((t, i) => {
      if (free.includes(i) && !t.confirmed) return;
      if (free.includes(i)) { t.x[6] = 0; t.x[7] = 0; }
      kept.push(t);
    });
    for (const d of high) {
      if (matched.has(d)) continue;
      const t = new Track(this.nextId++, xyxy[d], ts, firstFrame || o.minHits <= 1);
      kept.push(t);
      if (t.confirmed) ids[d] = t.id;
    }
    this.tracks = kept;
    return ids;
  }

  /**
   * Boxes of the confirmed tracks matched in the latest update, moved by their motion model to
   * `timestampMs` (Python's `FaceTracker.predict`): for frames analysed without the detector.
   *
   * @throws ValueError the timestamp is earlier than the previous update's.
   */
  predict(timestampMs: number): { ids: number[]; boxes: number[][] } {
    const live = this.advance(timestampMs, (t) => t.confirmed && t.lastMatchTs === this.lastTs);
    return { ids: live.map((t) => t.id), boxes: live.map((t) => t.box) };
  }

  /**
   * Where to look for this frame's faces (Python's `FaceTracker.search_boxes`): the predicted
   * boxes of every track matched in the latest update or within the last `maxMissedMs`.
   *
   * @throws ValueError the timestamp is earlier than the previous update's.
   */
  searchBoxes(timestampMs: number, maxMissedMs = 150): number[][] {
    return this.advance(timestampMs, (t) => t.lastMatchTs === this.lastTs || timestampMs - t.lastMatchTs <= maxMissedMs)
      .map((t) => t.box);
  }

  private advance(timestampMs: number, which: (t: Track) => boolean): Track[] {
    if (this.lastTs !== null && timestampMs < this.lastTs) {
      throw new ValueError(`expected timestamps that do not go backwards, got ${timestampMs} ms after ${this.lastTs} ms`);
    }
    const live = this.tracks.filter(which);
    for (const t of live) t.predict(timestampMs);
    return live;
  }

  /** End every remaining track (a stream's end or a scene cut); returns the confirmed ids ended. */
  finish(): number[] {
    this.endedTrackIds = this.tracks.filter((t) => t.confirmed).map((t) => t.id);
    this.tracks = [];
    return [...this.endedTrackIds];
  }

  private associate(xyxy: number[][], dets: number[], free: number[], minIou: number, buffer = 0): Map<number, number> {
    const out = new Map<number, number>();
    if (!dets.length || !free.length) return out;
    const boxes = free.map((i) => enlarge(this.tracks[i].box, buffer));
    const iou = dets.map((d) => boxes.map((b) => boxIou(enlarge(xyxy[d], buffer), b)));
    for (const [r, c] of linearAssignment(iou.map((row) => row.map((v) => 1 - v)))) {
      if (iou[r][c] >= minIou) out.set(dets[r], free[c]);
    }
    for (const ti of out.values()) free.splice(free.indexOf(ti), 1);
    return out;
  }
}
