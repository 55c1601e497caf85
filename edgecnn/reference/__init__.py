"""An independent C reference for edgecnn models, and the three-way parity checker.

- `kernels`: checked wrappers over the C kernels in csrc/ (grouped and depthwise
  conv2d, max/avg pool, reduce mean, pad, dense, relu, sigmoid, softmax, clip, broadcasting
  add/sub/mul/div), float32; `slow` holds their numpy twins.
- `ReferenceModel(path)`: runs an exported .onnx node by node through those kernels
  (no onnxruntime, no TensorFlow); refuses, by name, operators outside `SUPPORTED_OPS` and
  attributes it does not implement.
- `check_model(...)`: Keras vs onnxruntime vs the C reference, plus a per-layer table.
"""

from edgecnn.reference.check import CheckReport, LayerRow, check_model, format_report
from edgecnn.reference.model import SUPPORTED_OPS, ModelError, ReferenceModel

__all__ = ["SUPPORTED_OPS", "CheckReport", "LayerRow", "ModelError", "ReferenceModel", "check_model", "format_report"]
