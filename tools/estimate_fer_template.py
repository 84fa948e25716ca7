"""Estimate where FER-2013's automatic face registration puts the 5 landmarks.

FER-2013 faces are 48x48 crops made by an unknown face registration. To feed our
classifier crops framed like its training data, we run our own detector on FER-2013
training faces (upscaled 4x and padded so the detector sees some context), keep
confident detections, and take the per-point median of the landmarks in crop-relative
coordinates. The result is the alignment template in ``affectlens.alignment``.

Usage: python tools/estimate_fer_template.py ../shared/data/fer2013 [--n 4000]
"""

import argparse
import json

import cv2
import numpy as np

from affectlens.datasets import load_fer2013
from affectlens.detection import DetectorOptions, RetinaFaceDetector

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("--n", type=int, default=4000)
ap.add_argument("--upscale", type=int, default=4)
ap.add_argument("--pad", type=float, default=0.5, help="padding on each side, as a fraction of the crop side")
args = ap.parse_args()

train = load_fer2013(args.data, ("Training",))["Training"]
rng = np.random.default_rng(0)
idx = rng.choice(len(train), size=min(args.n, len(train)), replace=False)
det = RetinaFaceDetector(DetectorOptions(min_score=0.9))
side = 48 * args.upscale
pad = int(side * args.pad)
points = []
for i in idx:
    img = cv2.resize(train.images[i], (side, side), interpolation=cv2.INTER_CUBIC)
    img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    found = det.detect(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    if len(found) == 0:
        continue
    pts = (found.landmarks[0] - pad) / side
    points.append(pts)
points = np.stack(points)
median = np.median(points, axis=0)
spread = np.median(np.abs(points - median), axis=0)
print(json.dumps({"n_used": len(points), "n_tried": len(idx), "points_norm": median.round(4).tolist(),
                  "mad": spread.round(4).tolist()}, indent=1))
