"""Detect→align parity: FER-2013 PrivateTest faces upscaled and padded into grey photos, through
detection and 5-point alignment, against the same faces fed as crops, for several roll dead bands
(one detection pass; every band classifies the same landmarks). It also scores the "oracle" crop:
each face cut back out of its photo by the known upscale-and-pad transform (what a perfect
alignment to FER's own registration would give), and reports how far the fitted alignment's
scale and shift stray from that transform.

The layout is that of ``tests/test_recognizer.py::test_detect_and_align_land_near_direct_crop_accuracy``
(faces of ``--face`` px centred in ``--cell`` px cells, ``--grid`` x ``--grid`` cells per photo);
``--cell 384 --grid 1`` is one face per photo, padded as ``tools/estimate_fer_template.py`` pads.
Figures in docs/alignment.md.

Usage:
    python tools/align_parity.py ../shared/data/fer2013 [--faces 1024] [--cell 288] [--grid 4] \\
        [--bands 0,12,15,18] [--model fer-vgg48s-int8] [--labels fer2013|ferplus]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from affectlens import EmotionRecognizer
from affectlens.alignment import align_faces, limit_roll, similarity_transform
from affectlens.evaluate import faces_in_photos, private_test_faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("--faces", type=int, default=1024)
    ap.add_argument("--face", type=int, default=192, help="face side in the photo, px")
    ap.add_argument("--cell", type=int, default=288)
    ap.add_argument("--grid", type=int, default=4)
    ap.add_argument("--bands", default="0,12,15,18", help="roll dead bands to compare, degrees")
    ap.add_argument("--model", default="fer-vgg48s-int8")
    ap.add_argument("--labels", choices=("fer2013", "ferplus"), default="fer2013",
                    help="FER-2013's labels, or FER+ majority votes (faces the model cannot name left out)")
    args = ap.parse_args()
    bands = [float(b) for b in args.bands.split(",")]
    rec = EmotionRecognizer(model=args.model, min_quality=0.0, threads=1)
    images, labels = private_test_faces(args.data, args.labels, rec.classifier.labels)
    images, labels = images[:args.faces], labels[:args.faces]
    clf, ali = rec.classifier, rec.classifier.spec.alignment
    direct = clf.classify_crops(images).argmax(1)
    piped = {b: np.full(len(images), -1) for b in bands}
    oracle = np.full(len(images), -1)
    framing = []  # fitted scale / true scale, where the true face centre lands (crop px from the centre)
    h, w = clf.crop_size_hw
    dst = np.asarray(ali.points_norm) * np.array([w, h])
    for photo, where in faces_in_photos(images, args.face, args.cell, args.grid):
        faces = rec.detector.detect(photo)
        centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
        probs = {b: clf.classify_crops(align_faces(photo, faces.landmarks, ali.points_norm, clf.crop_size_hw, b))
                 for b in bands}
        for i, x, y in where:
            d = np.hypot(centres[:, 0] - x, centres[:, 1] - y)
            if len(d) and d.min() < 64:
                j = int(d.argmin())
                for b in bands:
                    piped[b][i] = int(probs[b][j].argmax())
                x0, y0 = int(x - args.face / 2), int(y - args.face / 2)
                cut = cv2.resize(photo[y0:y0 + args.face, x0:x0 + args.face], (w, h), interpolation=cv2.INTER_AREA)
                oracle[i] = int(clf.classify_crops(cut[None])[0].argmax())
                lm = faces.landmarks[j]
                m = limit_roll(similarity_transform(lm, dst), lm, dst, ali.roll_dead_band_deg)
                framing.append((np.hypot(m[0, 0], m[1, 0]) * args.face / w, *(m[:, :2] @ (x, y) + m[:, 2] - (w / 2, h / 2))))
    print(f"model {args.model}, {args.labels} labels, {len(images)} faces, {args.face} px in {args.cell} px cells, {args.grid}x{args.grid} per photo")
    for b in bands:
        found = piped[b] >= 0
        d_acc = (direct[found] == labels[found]).mean()
        p_acc = (piped[b][found] == labels[found]).mean()
        gained = int(((piped[b] == labels) & (direct != labels) & found).sum())
        lost = int(((piped[b] != labels) & (direct == labels) & found).sum())
        print(f"band {b:4.1f}°: found {found.mean():.1%}, direct {d_acc:.2%}, pipeline {p_acc:.2%}, "
              f"gap {100 * (d_acc - p_acc):.2f} points (faces right only as crops {lost}, only through the pipeline {gained})")
    found = oracle >= 0
    o_acc = (oracle[found] == labels[found]).mean()
    print(f"oracle crops (the known transform back): {o_acc:.2%}, gap {100 * ((direct[found] == labels[found]).mean() - o_acc):.2f} points")
    f = np.array(framing)
    print(f"fitted alignment ({ali.roll_dead_band_deg:g}° band) against the known transform: scale ratio mean {f[:, 0].mean():.3f} "
          f"sd {f[:, 0].std():.3f}; the face centre lands ({f[:, 1].mean():.2f}, {f[:, 2].mean():.2f}) px from the crop "
          f"centre, sd ({f[:, 1].std():.2f}, {f[:, 2].std():.2f}) px")


if __name__ == "__main__":
    main()
