"""Reader for dlib's imglab XML face-box files (``<image file=...><box top left width height/>``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from affectlens.errors import DatasetError


def load_dlib_boxes(xml_path: str | Path) -> dict[Path, np.ndarray]:
    """Image path → ``(n, 4)`` float32 ``xyxy`` boxes (ignored boxes are left out).

    Raises:
        DatasetError: missing or malformed file.
    """
    p = Path(xml_path)
    try:
        root = ET.parse(p).getroot()
    except FileNotFoundError:
        raise DatasetError(f"{p}: no such file") from None
    except ET.ParseError as exc:
        raise DatasetError(f"{p}: malformed XML ({exc})") from None
    out: dict[Path, np.ndarray] = {}
    for image in root.iter("image"):
        boxes = []
        for b in image.iter("box"):
            if b.get("ignore") == "1":
                continue
            x, y, w, h = (float(b.get(k)) for k in ("left", "top", "width", "height"))
            boxes.append((x, y, x + w, y + h))
        out[p.parent / image.get("file")] = np.asarray(boxes, np.float32).reshape(-1, 4)
    return out
