"""edgecnn: a small Keras CNN from training to fast ONNX inference on edge devices.

    import edgecnn

    model = edgecnn.load("catsdogs")                  # a bundled model, or "path/model.onnx"
    for p in model.classify("photo.jpg", top=2):      # or a uint8 BGR frame from OpenCV
        print(p.label, p.probability)

`import edgecnn` never imports TensorFlow (only `edgecnn.training` does), and loads
onnxruntime and OpenCV only when a name below that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgecnn.errors import EdgecnnError

if TYPE_CHECKING:
    from edgecnn.api import ImageResult, ImageRun, ImagesSummary, Model, load
    from edgecnn.live import EndReason, FrameResult, LiveRun, VideoSummary
    from edgecnn.models import BUNDLED
    from edgecnn.postprocess import Prediction
    from edgecnn.spec import ModelSpec

__version__ = "0.1.0"
__all__ = [
    "BUNDLED",
    "EdgecnnError",
    "EndReason",
    "FrameResult",
    "ImageResult",
    "ImageRun",
    "ImagesSummary",
    "LiveRun",
    "Model",
    "ModelSpec",
    "Prediction",
    "VideoSummary",
    "__version__",
    "load",
]

# Public name -> the module that defines it, imported on first use (PEP 562).
_LAZY = {
    "load": "edgecnn.api",
    "Model": "edgecnn.api",
    "ImageResult": "edgecnn.api",
    "ImageRun": "edgecnn.api",
    "ImagesSummary": "edgecnn.api",
    "EndReason": "edgecnn.live",
    "FrameResult": "edgecnn.live",
    "LiveRun": "edgecnn.live",
    "VideoSummary": "edgecnn.live",
    "BUNDLED": "edgecnn.models",
    "Prediction": "edgecnn.postprocess",
    "ModelSpec": "edgecnn.spec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgecnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
