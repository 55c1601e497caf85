"""ModelSpec: the preprocessing and label contract that travels inside the ONNX file.

The exporter writes it as JSON into the ONNX `metadata_props` under the key
`edgecnn.spec`; the runtime reads it back and never guesses.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

METADATA_KEY = "edgecnn.spec"
SPEC_FORMAT = 1

COLORS = ("gray", "rgb")
RESIZE_METHODS = ("bilinear", "area")
ACTIVATIONS = ("softmax", "sigmoid")
RESCALING_PLACES = ("runtime", "graph")
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class ModelSpec:
    """What the graph expects and what its output means.

    The graph input is `layout` (always NHWC) float32 of shape (N, height, width,
    channels) with values in `input_range`. `rescaling` says who maps uint8 pixels to
    that range: "runtime" (edgecnn's preprocess kernel divides by 255, the graph has
    no Rescaling) or "graph" (the graph rescales raw 0..255 values itself). Exactly
    one of them does it. `output_activation` is the graph's last activation: softmax
    gives one probability per class, sigmoid one probability for `class_names[1]`.
    """

    name: str
    height: int
    width: int
    channels: int
    color: str
    class_names: tuple[str, ...]
    output_activation: str
    resize: str = "bilinear"
    layout: str = "NHWC"
    input_range: tuple[float, float] = (0.0, 1.0)
    rescaling: str = "runtime"
    input_name: str = "input"
    edgecnn_version: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    format: int = SPEC_FORMAT
    # Quantisation (issue 12): the arithmetic the graph runs and, for int8, how it was
    # calibrated and which FP32 file it came from. Older specs omit these: fp32.
    precision: str = "fp32"
    calibration_method: str = ""
    calibration_count: int = 0
    fp32_sha256: str = ""

    def __post_init__(self) -> None:
        def bad(what: str) -> ValueError:
            return ValueError(f"invalid model spec: {what}")

        if self.height < 1 or self.width < 1:
            raise bad(f"input size must be positive, got {self.height}x{self.width}")
        if self.color not in COLORS:
            raise bad(f"color must be one of {COLORS}, got {self.color!r}")
        if self.channels != (1 if self.color == "gray" else 3):
            raise bad(f"color {self.color!r} needs {1 if self.color == 'gray' else 3} channels, got {self.channels}")
        if self.resize not in RESIZE_METHODS:
            raise bad(f"resize must be one of {RESIZE_METHODS}, got {self.resize!r}")
        if self.output_activation not in ACTIVATIONS:
            raise bad(f"output_activation must be one of {ACTIVATIONS}, got {self.output_activation!r}")
        if self.layout != "NHWC":
            raise bad(f"layout must be 'NHWC', got {self.layout!r}")
        if self.rescaling not in RESCALING_PLACES:
            raise bad(f"rescaling must be one of {RESCALING_PLACES}, got {self.rescaling!r}")
        expected_range = (0.0, 1.0) if self.rescaling == "runtime" else (0.0, 255.0)
        if tuple(self.input_range) != expected_range:
            raise bad(f"rescaling {self.rescaling!r} needs input_range {expected_range}, got {tuple(self.input_range)}")
        n = len(self.class_names)
        if self.output_activation == "sigmoid" and n != 2:
            raise bad(f"a sigmoid output needs exactly 2 class names, got {n}")
        if self.output_activation == "softmax" and n < 2:
            raise bad(f"a softmax output needs at least 2 class names, got {n}")
        if self.precision not in PRECISIONS:
            raise bad(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        quantised = (self.calibration_method, self.calibration_count, self.fp32_sha256)
        if self.precision == "fp32" and any(quantised):
            raise bad(f"an fp32 model has no calibration or source hash, got {quantised}")
        if self.precision == "int8" and not (self.calibration_method and self.calibration_count > 0
                                             and len(self.fp32_sha256) == 64):
            raise bad(f"an int8 model needs a calibration method, a count > 0 and the FP32 SHA-256, got {quantised}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one graph input image."""
        return (self.height, self.width, self.channels)

    @property
    def pixel_scale(self) -> float:
        """Factor the runtime applies to uint8 pixels: 1/255 or 1 (graph rescales)."""
        return 1.0 / 255.0 if self.rescaling == "runtime" else 1.0

    def to_json(self) -> str:
        """Serialise to a JSON object string (stable key order)."""
        data = dataclasses.asdict(self)
        data["class_names"] = list(self.class_names)
        data["input_range"] = list(self.input_range)
        data["metrics"] = dict(self.metrics)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        """Parse what `to_json` wrote; raises ValueError on anything else."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model spec is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("model spec must be a JSON object")
        if data.get("format") != SPEC_FORMAT:
            raise ValueError(f"model spec format {data.get('format')!r} is not supported (this edgecnn reads {SPEC_FORMAT})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model spec has unknown fields {unknown}")
        try:
            data["class_names"] = tuple(data["class_names"])
            data["input_range"] = tuple(float(v) for v in data.get("input_range", (0.0, 1.0)))
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"model spec is incomplete or malformed: {exc}") from None
