"""AffectLens: facial emotion recognition on ONNX Runtime.

Reads facial *appearance*, not inner state. Use it only with the informed consent of the
people analysed; see the README's "Responsible use".

Example:
    >>> from affectlens import EmotionRecognizer
    >>> faces = EmotionRecognizer().predict("photo.jpg")
    >>> [(f.emotion, round(f.confidence, 2)) for f in faces]
"""

import os as _os

# OpenCV refuses images above this many pixels; set before cv2 is first imported.
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))

from affectlens.classifier import EmotionClassifier  # noqa: E402
from affectlens.detection import DetectorOptions, RetinaFaceDetector  # noqa: E402
from affectlens.errors import (AffectLensError, DatasetError, InvalidImageError, InvalidVideoError,  # noqa: E402
                               ModelLoadError)
from affectlens.faces import Face, Faces, FrameInfo  # noqa: E402
from affectlens.imageio import load_image  # noqa: E402
from affectlens.labels import EMOTIONS  # noqa: E402
from affectlens.recognizer import EmotionRecognizer, RecognizerOptions  # noqa: E402

__version__ = "0.1.0"

_LAZY = {"VideoAnalyzer": "affectlens.video.analyzer", "VideoOptions": "affectlens.video.analyzer",
         "run_video": "affectlens.video.session", "RunOptions": "affectlens.video.session"}


def __getattr__(name: str):
    """``from affectlens import VideoAnalyzer`` (and friends) without importing video code up front."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'affectlens' has no attribute {name!r}")

__all__ = ["EmotionRecognizer", "RecognizerOptions", "EmotionClassifier", "RetinaFaceDetector", "DetectorOptions",
           "Face", "Faces", "FrameInfo", "EMOTIONS", "load_image", "AffectLensError", "InvalidImageError",
           "ModelLoadError", "DatasetError", "InvalidVideoError", "VideoAnalyzer", "VideoOptions", "run_video", "RunOptions", "__version__"]
