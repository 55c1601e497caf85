"""ModelSpec: the preprocessing and label contract that travels inside the ONNX file.

The exporter writes it as JSON into the ONNX `metadata_props` under the key
`edgecnn.spec`; the runtime reads it back and never guesses.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

METADATA_KEY = "edgecnn.spec"
SPEC_FORMAT = 2
READABLE_FORMATS = (1, 2)  # format 1: no pixel_scale/mean/std/channel_order (runtime: /255, graph: raw)

COLORS = ("gray", "rgb")
CHANNEL_ORDERS = ("rgb", "bgr")
RESIZE_METHODS = ("bilinear", "area")
ACTIVATIONS = ("softmax", "sigmoid", "logits")
RESCALING_PLACES = ("runtime", "graph")
UNIT_SCALE = 1.0 / 255.0

# The input normalisations Keras Applications' preprocess_input uses, for models that expect
# it from outside the graph: pixel_scale, mean, std (one per channel, in channel_order).
PREPROCESS_MODES: dict[str, dict[str, Any]] = {
    "unit": dict(pixel_scale=UNIT_SCALE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channel_order="rgb"),
    "tf": dict(pixel_scale=1.0 / 127.5, mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0), channel_order="rgb"),
    "torch": dict(pixel_scale=UNIT_SCALE, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), channel_order="rgb"),
    "caffe": dict(pixel_scale=1.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0), channel_order="bgr"),
}


@dataclass(frozen=True)
class ModelSpec:
    """What the graph expects and what its output means.

    The graph input is `layout` (always NHWC) float32 of shape (N, height, width,
    channels), channels in `channel_order` for RGB models. `rescaling` says who
    normalises uint8 pixels: "runtime" (edgecnn's preprocess kernel writes
    (pixel * pixel_scale - mean[c]) / std[c] for channel c; the graph has no such step)
    or "graph" (the graph takes raw 0..255 values and normalises them itself; the
    runtime's map is the identity). Exactly one of them does it. `input_range` is the
    range the map gives (derived). `output_activation` is the graph's last
    activation: softmax gives one probability per class, sigmoid one probability for
    `class_names[1]`, logits unnormalised scores that the runtime turns into
    probabilities (softmax; one logit for two classes: sigmoid).
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
    input_range: tuple[float, float] | None = None
    rescaling: str = "runtime"
    pixel_scale: float | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    channel_order: str = "rgb"
    input_name: str = "input"
    edgecnn_version: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    format: int = SPEC_FORMAT

    def __post_init__(self) -> None:
        def bad(what: str) -> ValueError:
            return ValueError(f"invalid model spec: {what}")

        def fill(name: str, value: Any) -> None:  # derived defaults of a frozen dataclass
            object.__setattr__(self, name, value)

        fill("pixel_scale", (UNIT_SCALE if self.rescaling == "runtime" else 1.0) if self.pixel_scale is None
             else float(self.pixel_scale))
        fill("mean", tuple(float(v) for v in self.mean) or (0.0,) * self.channels)
        fill("std", tuple(float(v) for v in self.std) or (1.0,) * self.channels)

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
        if self.channel_order not in CHANNEL_ORDERS:
            raise bad(f"channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
        if self.color == "gray" and self.channel_order != "rgb":
            raise bad(f"a gray model has no channel order to choose, got channel_order {self.channel_order!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != self.channels or not all(math.isfinite(v) for v in values):
                raise bad(f"{name} must be {self.channels} finite numbers (one per channel), got {list(values)}")
        if not math.isfinite(self.pixel_scale) or self.pixel_scale == 0 or 0.0 in self.std:
            raise bad(f"pixel_scale and std must be finite and non-zero, got {self.pixel_scale} and {list(self.std)}")
        if self.rescaling == "graph" and (self.pixel_scale, self.mean, self.std, self.channel_order) != (
                1.0, (0.0,) * self.channels, (1.0,) * self.channels, "rgb"):
            raise bad("rescaling 'graph' means the graph takes raw 0..255 RGB values: pixel_scale 1, mean 0, std 1")
        ends = [(edge * self.pixel_scale - m) / d for m, d in zip(self.mean, self.std) for edge in (0.0, 255.0)]
        derived = (min(ends), max(ends))
        if self.input_range is None:
            fill("input_range", derived)
        elif len(self.input_range) != 2 or not all(
                math.isclose(float(a), b, rel_tol=1e-6, abs_tol=1e-6) for a, b in zip(self.input_range, derived)):
            raise bad(f"rescaling {self.rescaling!r} with this normalisation needs input_range "
                      f"({derived[0]:g}, {derived[1]:g}), got {tuple(self.input_range)}")
        else:
            fill("input_range", (float(self.input_range[0]), float(self.input_range[1])))
        n = len(self.class_names)
        if self.output_activation == "sigmoid" and n != 2:
            raise bad(f"a sigmoid output needs exactly 2 class names, got {n}")
        if self.output_activation == "softmax" and n < 2:
            raise bad(f"a softmax output needs at least 2 class names, got {n}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one graph input image."""
        return (self.height, self.width, self.channels)

    def preprocess_args(self) -> dict[str, Any]:
        """Keyword arguments of `edgecnn.preprocess.to_batch` that produce this graph's input."""
        return dict(size=(self.height, self.width), color=self.color, method=self.resize, scale=self.pixel_scale,
                    mean=self.mean, std=self.std, channel_order=self.channel_order)

    def describe_input(self) -> str:
        """The normalisation in words, e.g. 'rgb (x * 0.00392157 - [0.485, ...]) / [...]'."""
        if self.rescaling == "graph":
            return f"{self.color} 0..255 (the graph normalises)"
        order = self.channel_order if self.color == "rgb" else "gray"
        text = f"x * {self.pixel_scale:.6g}"
        if any(self.mean):
            text = f"({text} - [{', '.join(f'{v:g}' for v in self.mean)}])"
        if any(v != 1.0 for v in self.std):
            text += f" / [{', '.join(f'{v:g}' for v in self.std)}]"
        return f"{order} {text}, in [{self.input_range[0]:.4g}, {self.input_range[1]:.4g}] (runtime normalises)"

    def to_json(self) -> str:
        """Serialise to a JSON object string (stable key order)."""
        data = dataclasses.asdict(self)
        for name in ("class_names", "input_range", "mean", "std"):
            data[name] = list(data[name])
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
        if data.get("format") not in READABLE_FORMATS:
            raise ValueError(f"model spec format {data.get('format')!r} is not supported "
                             f"(this edgecnn reads {', '.join(map(str, READABLE_FORMATS))})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model spec has unknown fields {unknown}")
        try:
            data["class_names"] = tuple(data["class_names"])
            for name in ("input_range", "mean", "std"):
                if name in data:
                    data[name] = tuple(float(v) for v in data[name])
            data["format"] = SPEC_FORMAT  # read as this version's spec; what format 1 lacked has defaults
            return cls(**data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"model spec is incomplete or malformed: {exc}") from None
