/**
 * Result types: the same shape and field names as the Python library's `Faces.to_dict()`
 * JSON, so results from Python, Node and the browser can be compared and stored alike.
 */

/** One face (Python's `Face.to_dict()`). */
export interface Face {
  /** Box `[x1, y1, x2, y2]` in pixels of the analysed image. */
  bbox: [number, number, number, number];
  /** Five `[x, y]` points: image-left eye, image-right eye, nose tip, image-left and image-right mouth corner. */
  landmarks: [number, number][];
  /** Detector confidence in [0, 1]. */
  det_score: number;
  /** Most probable label (appearance of the expression, not the person's inner state); "unreliable" for a low-quality face. */
  emotion: string | null;
  /** Probability of `emotion`. */
  confidence: number | null;
  /** Label → probability (sums to 1); smoothed in video mode for tracked faces. */
  scores: Record<string, number>;
  /** Track id across video frames (no identity: "the same box moving"); null when untracked. */
  track_id: number | null;
  /** How far the reading can be trusted, in [0, 1]: the lowest of its quality signals. */
  quality: number | null;
  /** The weakest signal: "size", "sharpness", "pose" or "detection". */
  quality_reason: string | null;
  /** False below the recognizer's `minQuality`: then `emotion` reads "unreliable". */
  reliable: boolean;
  /** Video mode: the frame's own probabilities before smoothing. */
  scores_raw?: Record<string, number>;
  /** Video mode: whether the emotion model read this face on this frame (false: it kept its latest reading; `classifyPerS`). */
  read?: boolean;
}

/** Where the faces come from (Python's `FrameInfo`). */
export interface FrameInfo {
  source: string | null;
  frame_index: number | null;
  timestamp_ms: number | null;
  image_size_hw: [number, number];
}

/** Every face of one image or frame (Python's `Faces.to_dict()`). */
export interface FacesResult {
  info: FrameInfo;
  /** Names of the probability columns, in the model's order (read from its spec). */
  labels: string[];
  faces: Face[];
}

/** A face record from columns, with Python's rounding (0.01 px, 1e-6 probability). */
export function makeFace(
  xyxy: number[], landmarks: number[][], detScore: number, probs: number[] | null, labels: string[],
  trackId: number | null, quality: { quality: number; reason: string; reliable: boolean; unreliable: string } | null,
  raw?: number[],
): Face {
  const r = (v: number, k: number) => Math.round(v * 10 ** k) / 10 ** k;
  const scores: Record<string, number> = {};
  let emotion: string | null = null, confidence: number | null = null;
  if (probs && probs.length === labels.length) {
    let best = -1;
    labels.forEach((l, i) => {
      scores[l] = r(probs[i], 6);
      if (probs[i] > best) { best = probs[i]; emotion = l; }
    });
    confidence = r(best, 6);
  }
  const face: Face = {
    bbox: xyxy.map((v) => r(v, 2)) as Face["bbox"],
    landmarks: landmarks.map(([x, y]) => [r(x, 2), r(y, 2)]),
    det_score: r(detScore, 6),
    emotion: quality && !quality.reliable && emotion !== null ? quality.unreliable : emotion,
    confidence, scores,
    track_id: trackId,
    quality: quality ? r(quality.quality, 4) : null,
    quality_reason: quality ? quality.reason : null,
    reliable: quality ? quality.reliable : true,
  };
  if (raw) face.scores_raw = Object.fromEntries(labels.map((l, i) => [l, r(raw[i], 6)]));
  return face;
}
