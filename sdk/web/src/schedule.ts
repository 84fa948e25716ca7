/**
 * When to run the face detector on a video frame, and on what (Python's
 * `affectlens.video.schedule.DetectionScheduler`): the whole frame, windows around the tracked
 * faces, or not at all.
 *
 * `detectEvery` 0 ("auto", the default) scans the whole frame when there are no tracks and at
 * least every `rescanMs` of video time (new faces appear within that delay); on the frames in
 * between the detector runs on windows around the tracks' predicted boxes every `gap`-th frame,
 * and the tracker's motion model moves the faces on the others. With `regionsEvery` 0 the gap
 * follows the tracks' stability: below 3% prediction error (of the face's side) it grows by a
 * frame, up to 4 and never beyond 170 ms of video; above 6%, or when a followed face was not
 * found, it shrinks, down to 2. `detectEvery` k >= 1 scans every k-th frame and predicts between.
 */
import { ValueError } from "./errors.js";

export type Plan = "full" | "regions" | "predict";

/** Smallest and largest gap (frames) between windowed passes with `regionsEvery` 0. */
export const AUTO_GAPS: [number, number] = [2, 4];
/** Prediction error (fraction of the face's side) below which the gap grows, and above which it shrinks. */
export const STABLE_ERROR = 0.03, UNSTABLE_ERROR = 0.06;
/** Longest video time (ms) an adaptive gap may span. */
export const AUTO_MAX_GAP_MS = 170;

export class DetectionScheduler {
  /** Frames between windowed passes now (`regionsEvery`, or the adaptive gap). */
  gap = AUTO_GAPS[0];
  private since: number | null = null;
  private lastFullMs: number | null = null;
  private sinceMeasured = 0;
  private lastMs: number | null = null;
  private frameMs: number | null = null;

  /**
   * @param every 0 (auto) or k >= 1 (a full scan every k-th frame).
   * @param rescanMs auto: longest time between two full scans (ms of video).
   * @param regionsEvery auto: windows every this-many-th frame, or 0 for a gap from the tracks' stability.
   * @throws ValueError a negative or non-integer `every`/`regionsEvery`, or `rescanMs` outside (0, 60000].
   */
  constructor(readonly every = 0, readonly rescanMs = 500, readonly regionsEvery = 0) {
    if (!(Number.isInteger(every) && every >= 0)) throw new ValueError(`detectEvery must be 0 (auto) or an integer >= 1, got ${every}`);
    if (!(rescanMs > 0 && rescanMs <= 60_000)) throw new ValueError(`rescanS must be in (0, 60] seconds, got ${rescanMs / 1000}`);
    if (!(Number.isInteger(regionsEvery) && regionsEvery >= 0)) {
      throw new ValueError(`regionsEvery must be 0 (from the tracks' stability) or an integer >= 1, got ${regionsEvery}`);
    }
    this.reset();
  }

  /** Start over (a new stream, or a scene cut): the next frame gets a full scan. */
  reset(): void {
    this.since = null;
    this.lastFullMs = null;
    this.sinceMeasured = 0;
    this.lastMs = null;
    this.frameMs = null;
    this.gap = this.regionsEvery || AUTO_GAPS[0];
  }

  /**
   * Adapt the gap to how far the tracker's predicted boxes were from the boxes a windowed pass
   * measured (median over the tracks, as a fraction of the face's side; Infinity or NaN when none
   * was found); `lost`: a followed face was not found.
   */
  observe(predictionError: number, lost = false): void {
    if (this.regionsEvery) return;
    const frameMs = this.frameMs || 1e9;
    const longest = Math.max(AUTO_GAPS[0], Math.min(AUTO_GAPS[1], Math.floor(AUTO_MAX_GAP_MS / frameMs)));
    if (lost || !(predictionError <= UNSTABLE_ERROR)) this.gap -= 1;
    else if (predictionError < STABLE_ERROR) this.gap += 1;
    this.gap = Math.max(AUTO_GAPS[0], Math.min(this.gap, longest));
  }

  /** The pass for this frame (call once per frame, in time order). */
  plan(timestampMs: number, haveTracks: boolean): Plan {
    if (this.lastMs !== null && timestampMs > this.lastMs) this.frameMs = timestampMs - this.lastMs;
    this.lastMs = timestampMs;
    const due = this.every === 0
      ? this.lastFullMs === null || timestampMs - this.lastFullMs >= this.rescanMs
      : this.since === null || this.since >= this.every - 1;
    const full = due || !haveTracks;
    this.since = full ? 0 : (this.since as number) + 1;
    this.sinceMeasured = full ? 0 : this.sinceMeasured + 1;
    if (full) {
      this.lastFullMs = timestampMs;
      return "full";
    }
    if (this.every === 0 && this.sinceMeasured >= this.gap) {
      this.sinceMeasured = 0;
      return "regions";
    }
    return "predict";
  }
}

/**
 * How far a tracker's predicted boxes were from the measured ones (Python's `prediction_error`):
 * per predicted track found among `ids`, the largest centre or size difference over the measured
 * box's longer side; the median over those (Infinity when none), and whether one was not found.
 */
export function predictionError(predIds: number[], predBoxes: number[][], ids: number[], boxes: number[][]): { error: number; lost: boolean } {
  const rows = new Map<number, number>();
  ids.forEach((t, i) => { if (t > 0) rows.set(t, i); });
  const errors: number[] = [];
  predIds.forEach((tid, k) => {
    const i = rows.get(tid);
    if (i === undefined) return;
    const b = boxes[i], p = predBoxes[k];
    const side = Math.max(b[2] - b[0], b[3] - b[1], 1);
    const diff = [(b[0] + b[2] - p[0] - p[2]) / 2, (b[1] + b[3] - p[1] - p[3]) / 2,
      (b[2] - b[0]) - (p[2] - p[0]), (b[3] - b[1]) - (p[3] - p[1])];
    errors.push(Math.max(...diff.map(Math.abs)) / side);
  });
  if (!errors.length) return { error: Infinity, lost: errors.length < predIds.length };
  const sorted = [...errors].sort((a, b) => a - b);
  const m = sorted.length >> 1;
  const error = sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
  return { error, lost: errors.length < predIds.length };
}
