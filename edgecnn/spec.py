"""ModelSpec: the preprocessing and label contract that travels inside the ONNX file.

The exporter writes it as JSON into the ONNX `metadata_props` under the key
`edgecnn.spec` (`write_model_spec`); the runtime reads it back (`read_model_spec`,
`spec_from_metadata`) and never guesses.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgecnn.errors import EdgecnnError

if TYPE_CHECKING:
    import onnx

from edgecnn.preprocess import MAX_DEPTH, MAX_PATCH, batch_shape  # window limits: what the kernel writes

METADATA_KEY = "edgecnn.spec"
SPEC_FORMAT = 3
# format 1: no pixel_scale/mean/std/channel_order (runtime: /255, graph: raw); format 2: no display_names
# and no input windows (patch, patch_pads, input_depth, input_quantization)
READABLE_FORMATS = (1, 2, 3)

# Upper bounds: a spec is read from a file someone else made, so every size is capped.
MAX_SPEC_BYTES = 1 << 20  # the JSON text
MAX_JSON_DEPTH = 8  # nesting of objects and arrays (metrics)
MAX_SIDE = 8192  # input height and width
MAX_CLASSES = 100_000
MAX_TEXT = 256  # characters in a name, class name, input name or version
MAX_LANGUAGES = 64  # translations of the class names
# A BCP 47 language tag as display_names keys use it: "ko", "pt-BR", "zh-Hant".
LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")

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
PRECISIONS = ("fp32", "int8")


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
    probabilities (softmax; one logit for two classes: sigmoid). `display_names` maps
    a language tag ("ko") to the class names in that language, in `class_names` order,
    for people to read; `class_names` stay the canonical names (JSON output, folders).
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
    # Quantisation (issue 12): the arithmetic the graph runs and, for int8, how it was
    # calibrated and which FP32 file it came from. Older specs omit these: fp32.
    precision: str = "fp32"
    calibration_method: str = ""
    calibration_count: int = 0
    fp32_sha256: str = ""
    display_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # What the graph input holds when it is not the normalised image itself (issue 12; see
    # `edgecnn.preprocess.to_batch`): each position the `patch` (height, width) window of the
    # image zero-padded by `patch_pads` (top, left, bottom, right), followed by zeros up to
    # `input_depth` values (0: exactly the window); with `input_quantization` (scale,
    # zero_point) as uint8, quantised as ONNX QuantizeLinear does. Older specs omit these.
    patch: tuple[int, int] = (1, 1)
    patch_pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    input_depth: int = 0
    input_quantization: tuple[float, int] | tuple[()] = ()

    def __post_init__(self) -> None:
        def bad(what: str) -> ValueError:
            return ValueError(f"invalid model spec: {what}")

        def fill(name: str, value: Any) -> None:  # derived defaults of a frozen dataclass
            object.__setattr__(self, name, value)

        for item in dataclasses.fields(self):
            problem = FIELD_RULES[item.name](getattr(self, item.name))
            if problem:
                raise bad(f"{item.name} {problem}")
        scale = (
            (UNIT_SCALE if self.rescaling == "runtime" else 1.0)
            if self.pixel_scale is None
            else float(self.pixel_scale)
        )
        fill("pixel_scale", scale)
        fill("mean", tuple(float(v) for v in self.mean) or (0.0,) * self.channels)
        fill("std", tuple(float(v) for v in self.std) or (1.0,) * self.channels)
        window_values = self.patch[0] * self.patch[1] * self.channels
        fill("input_depth", self.input_depth or window_values)
        if self.input_depth < window_values:
            raise bad(f"input_depth must be at least the window's {window_values} values, got {self.input_depth}")
        top, left, bottom, right = self.patch_pads
        (patch_h, patch_w) = self.patch
        if (
            max(top, bottom) >= patch_h
            or max(left, right) >= patch_w
            or (self.height + top + bottom < patch_h or self.width + left + right < patch_w)
        ):
            raise bad(
                f"patch {list(self.patch)} with pads {list(self.patch_pads)} does not fit a "
                f"{self.height}x{self.width} image (each pad below its patch side)"
            )

        if self.channels != (1 if self.color == "gray" else 3):
            raise bad(f"color {self.color!r} needs {1 if self.color == 'gray' else 3} channels, got {self.channels}")
        if self.color == "gray" and self.channel_order != "rgb":
            raise bad(f"a gray model has no channel order to choose, got channel_order {self.channel_order!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != self.channels or not all(math.isfinite(v) for v in values):
                raise bad(f"{name} must be {self.channels} finite numbers (one per channel), got {list(values)}")
        if not math.isfinite(scale) or scale == 0 or 0.0 in self.std:
            raise bad(f"pixel_scale and std must be finite and non-zero, got {scale} and {list(self.std)}")
        if self.rescaling == "graph" and (scale, self.mean, self.std, self.channel_order) != (
            1.0,
            (0.0,) * self.channels,
            (1.0,) * self.channels,
            "rgb",
        ):
            raise bad("rescaling 'graph' means the graph takes raw 0..255 RGB values: pixel_scale 1, mean 0, std 1")
        ends = [(edge * scale - m) / d for m, d in zip(self.mean, self.std, strict=True) for edge in (0.0, 255.0)]
        derived = (min(ends), max(ends))
        if self.input_range is None:
            fill("input_range", derived)
        elif len(self.input_range) != 2 or not all(
            math.isclose(float(a), b, rel_tol=1e-6, abs_tol=1e-6)
            for a, b in zip(self.input_range, derived, strict=True)
        ):
            raise bad(
                f"rescaling {self.rescaling!r} with this normalisation needs input_range "
                f"({derived[0]:g}, {derived[1]:g}), got {tuple(self.input_range)}"
            )
        else:
            fill("input_range", (float(self.input_range[0]), float(self.input_range[1])))
        n = len(self.class_names)
        fill("display_names", {language: tuple(names) for language, names in self.display_names.items()})
        for language, names in self.display_names.items():
            if len(names) != n:
                raise bad(f"display_names[{language!r}] must hold {n} names (one per class), got {len(names)}")
        if self.output_activation == "sigmoid" and n != 2:
            raise bad(f"a sigmoid output needs exactly 2 class names, got {n}")
        if self.output_activation == "softmax" and n < 2:
            raise bad(f"a softmax output needs at least 2 class names, got {n}")
        if self.precision not in PRECISIONS:
            raise bad(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        quantised = (self.calibration_method, self.calibration_count, self.fp32_sha256)
        if self.precision == "fp32" and any(quantised):
            raise bad(f"an fp32 model has no calibration or source hash, got {quantised}")
        if self.precision == "int8" and not (
            self.calibration_method and self.calibration_count > 0 and len(self.fp32_sha256) == 64
        ):
            raise bad(f"an int8 model needs a calibration method, a count > 0 and the FP32 SHA-256, got {quantised}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one graph input sample: (height, width, channels) for the image itself,
        else what `edgecnn.preprocess.batch_shape` gives for the windows."""
        return batch_shape(1, (self.height, self.width), self.color, self.patch, self.patch_pads, self.input_depth)[1:]

    @property
    def input_dtype(self) -> str:
        """The graph input's element type: "uint8" when quantised, else "float32"."""
        return "uint8" if self.input_quantization else "float32"

    def display_language(self, language: str | None) -> str | None:
        """The display_names key that serves `language` ("ko-KR" is served by "ko"), or None."""
        if not language:
            return None
        if language in self.display_names:
            return language
        primary = language.split("-")[0]
        return primary if primary in self.display_names else None

    def labels(self, language: str | None = None) -> tuple[str, ...]:
        """Class names in `language` when `display_language` finds a translation, else `class_names`."""
        key = self.display_language(language)
        return self.class_names if key is None else self.display_names[key]

    def preprocess_args(self) -> dict[str, Any]:
        """Keyword arguments of `edgecnn.preprocess.to_batch` that produce this graph's input."""
        return dict(
            size=(self.height, self.width),
            color=self.color,
            method=self.resize,
            scale=self.pixel_scale,
            mean=self.mean,
            std=self.std,
            channel_order=self.channel_order,
            patch=self.patch,
            patch_pads=self.patch_pads,
            depth=self.input_depth,
            quantization=self.input_quantization or None,
        )

    def describe_input(self) -> str:
        """The normalisation in words, e.g. 'rgb (x * 0.00392157 - [0.485, ...]) / [...]'."""
        if self.rescaling == "graph":
            return f"{self.color} 0..255 (the graph normalises)"
        assert self.input_range is not None  # derived in __post_init__ when not given
        order = self.channel_order if self.color == "rgb" else "gray"
        text = f"x * {self.pixel_scale:.6g}"
        if any(self.mean):
            text = f"({text} - [{', '.join(f'{v:g}' for v in self.mean)}])"
        if any(v != 1.0 for v in self.std):
            text += f" / [{', '.join(f'{v:g}' for v in self.std)}]"
        text = f"{order} {text}, in [{self.input_range[0]:.4g}, {self.input_range[1]:.4g}] (runtime normalises)"
        if self.patch != (1, 1) or any(self.patch_pads) or self.input_depth != self.channels:
            text += f", as {self.patch[0]}x{self.patch[1]} windows of {self.input_depth} values"
        if self.input_quantization:
            text += f", uint8 (scale {self.input_quantization[0]:.6g}, zero point {self.input_quantization[1]})"
        return text

    def to_json(self) -> str:
        """Serialise to a JSON object string (stable key order)."""
        data = dataclasses.asdict(self)
        for name in ("class_names", "input_range", "mean", "std", "patch", "patch_pads", "input_quantization"):
            data[name] = list(data[name])
        data["metrics"] = dict(self.metrics)
        data["display_names"] = {language: list(names) for language, names in self.display_names.items()}
        return json.dumps(data, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Parse what `to_json` wrote; raises ValueError (one line) on anything else."""
        if len(text) > MAX_SPEC_BYTES:
            raise ValueError(f"model spec is {len(text)} characters long, more than {MAX_SPEC_BYTES}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model spec is not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError("model spec JSON is nested too deeply") from None
        if not isinstance(data, dict):
            raise ValueError("model spec must be a JSON object")
        if _depth(data) > MAX_JSON_DEPTH:
            raise ValueError(f"model spec JSON is nested more than {MAX_JSON_DEPTH} levels deep")
        if data.get("format") not in READABLE_FORMATS or isinstance(data.get("format"), bool):
            raise ValueError(
                f"model spec format {data.get('format')!r} is not supported "
                f"(this edgecnn reads {', '.join(map(str, READABLE_FORMATS))})"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model spec has unknown fields {unknown}")
        missing = sorted(
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        if missing:
            raise ValueError(f"model spec is incomplete: missing {missing}")
        # JSON arrays become the tuples the dataclass holds; the rules check their contents.
        data = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
        data["format"] = SPEC_FORMAT  # read as this version's spec; what format 1 lacked has defaults
        return cls(**data)

    def check_graph(self, inputs: Sequence[tuple[str, Sequence[Any]]], outputs: Sequence[Sequence[Any]]) -> None:
        """ValueError unless the graph's (input name, shape) list and output shapes fit this spec.

        Shapes are lists of dims; a dim that is not an int (a symbolic name, None) is
        not compared. The graph needs one input, (N, height, width, channels), and its
        first output must hold one value per class (softmax) or one value (sigmoid).
        """
        names = [name for name, _ in inputs]
        if names != [self.input_name]:
            raise ValueError(f"graph inputs {names} do not match the spec's input {self.input_name!r}")
        expected = (None, *self.input_shape)
        if not _dims_fit(inputs[0][1], expected):
            raise ValueError(
                f"graph input shape {_shown(inputs[0][1])} does not match the spec's "
                f"(N, {self.height}, {self.width}, {self.channels})"
            )
        if not outputs:
            raise ValueError("graph has no outputs")
        n = len(self.class_names)
        widths = {"sigmoid": (1,), "softmax": (n,), "logits": (1, n) if n == 2 else (n,)}[self.output_activation]
        if not any(_dims_fit(outputs[0], (None, width)) for width in widths):
            what = "1 value (sigmoid)" if widths == (1,) else f"{n} values, one per class name"
            if len(widths) == 2:
                what = "1 logit or 2, for 2 class names"
            raise ValueError(
                f"graph output shape {_shown(outputs[0])} does not match the spec: "
                f"needs (N, {' or '.join(map(str, widths))}): {what}"
            )


GraphIO = tuple[list[tuple[str, list[Any]]], list[list[Any]]]  # (inputs as (name, dims), output dims)


def onnx_graph_io(model: onnx.ModelProto) -> GraphIO:
    """(inputs, outputs) of an onnx.ModelProto in the form `ModelSpec.check_graph` takes."""
    initializers = {t.name for t in model.graph.initializer}

    def dims(value: Any) -> list[Any]:
        return [
            d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in value.type.tensor_type.shape.dim
        ]

    inputs = [(v.name, dims(v)) for v in model.graph.input if v.name not in initializers]
    return inputs, [dims(v) for v in model.graph.output]


def spec_from_metadata(metadata: Mapping[str, str], graph: GraphIO, where: str) -> ModelSpec:
    """The ModelSpec an ONNX model's metadata map (key -> value) holds, checked against the
    graph's (inputs, outputs). EdgecnnError starting with `where` when it is missing, not a
    valid spec, or does not fit the graph."""
    text = metadata.get(METADATA_KEY)
    if text is None:
        raise EdgecnnError(
            f"{where}: ONNX file has no edgecnn metadata ({METADATA_KEY}); export it with edgecnn-export"
        )
    try:
        spec = ModelSpec.from_json(text)
        spec.check_graph(*graph)
    except ValueError as exc:
        raise EdgecnnError(f"{where}: {exc}") from None
    return spec


def has_model_spec(model: onnx.ModelProto) -> bool:
    """Whether an onnx.ModelProto carries a ModelSpec entry (valid or not) in its metadata."""
    return any(entry.key == METADATA_KEY for entry in model.metadata_props)


def read_model_spec(model: onnx.ModelProto, where: str) -> ModelSpec:
    """`spec_from_metadata` for an onnx.ModelProto and its own graph."""
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    return spec_from_metadata(metadata, onnx_graph_io(model), where)


def write_model_spec(model: onnx.ModelProto, spec: ModelSpec) -> None:
    """Store `spec` in an onnx.ModelProto's metadata, replacing the one already there."""
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            entry.value = spec.to_json()
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, spec.to_json()


def _dims_fit(shape: Sequence[Any], expected: Sequence[int | None]) -> bool:
    if len(shape) != len(expected):
        return False
    return all(
        want is None or not isinstance(got, int) or got == want for got, want in zip(shape, expected, strict=True)
    )


def _shown(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) else "N" for d in shape) + ")"


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0)."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, (list, tuple)):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


# ---------------------------------------------------------------------------
# One rule per field: value -> None when acceptable, else what is wrong (after the field name).
# A new field needs a rule here; tests/test_spec.py checks that every field has one.

Rule = Callable[[Any], "str | None"]


def _integer(low: int, high: int) -> Rule:
    def rule(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, got {value!r}"
        if not low <= value <= high:
            return f"must be in {low}..{high}, got {value}"
        return None

    return rule


def _text(empty: bool = False) -> Rule:
    def rule(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"must be a string, got {value!r}"
        return _text_problem(value, empty)

    return rule


def _text_problem(value: str, empty: bool) -> str | None:
    if not value and not empty:
        return "must not be empty"
    if len(value) > MAX_TEXT:
        return f"must be at most {MAX_TEXT} characters, got {len(value)}"
    if any(not ch.isprintable() for ch in value):
        return f"must not hold control characters, got {value!r}"
    return None


def _choice(options: Sequence[str]) -> Rule:
    def rule(value: Any) -> str | None:
        return (
            None if isinstance(value, str) and value in options else f"must be one of {tuple(options)}, got {value!r}"
        )

    return rule


def _class_names(value: Any) -> str | None:
    if not isinstance(value, tuple):
        return f"must be a list of strings, got {value!r}"
    if len(value) > MAX_CLASSES:
        return f"must hold at most {MAX_CLASSES} names, got {len(value)}"
    for i, name in enumerate(value):
        problem = f"must be a string, got {name!r}" if not isinstance(name, str) else _text_problem(name, False)
        if problem:
            return f"[{i}] {problem}"
    if len(set(value)) != len(value):
        return f"must be distinct, got {sorted(n for n in set(value) if value.count(n) > 1)} more than once"
    return None


def _display_names(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f"must be an object from language tag to class names, got {value!r}"
    if len(value) > MAX_LANGUAGES:
        return f"must hold at most {MAX_LANGUAGES} languages, got {len(value)}"
    for language, names in value.items():
        if not isinstance(language, str) or not LANGUAGE_TAG.fullmatch(language):
            return f"key {language!r} is not a language tag such as 'ko' or 'pt-BR'"
        problem = _class_names(tuple(names) if isinstance(names, list) else names)
        if problem:
            return f"[{language!r}] {problem}"
    return None


def _number_pair(value: Any) -> str | None:
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )
    return None if ok else f"must be two finite numbers, got {value!r}"


def _number(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return None if ok else f"must be a finite number, got {value!r}"


def _numbers(value: Any) -> str | None:
    if not isinstance(value, tuple) or len(value) > 4:
        return f"must be a list of at most 4 numbers, got {value!r}"
    return next((f"[{i}] {p}" for i, v in enumerate(value) if (p := _number(v))), None)


def _ints(count: int, low: int, high: int) -> Rule:
    def rule(value: Any) -> str | None:
        ok = (
            isinstance(value, tuple)
            and len(value) == count
            and all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value)
        )
        return None if ok else f"must be {count} integers from {low} to {high}, got {value!r}"

    return rule


def _quantization(value: Any) -> str | None:
    if value == ():
        return None
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and _number(value[0]) is None
        and value[0] > 0
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
        and 0 <= value[1] <= 255
    )
    return None if ok else f"must be empty or (scale > 0, zero point 0..255), got {value!r}"


def _mapping(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f"must be an object, got {value!r}"
    if _depth(value) > MAX_JSON_DEPTH - 1:
        return f"is nested more than {MAX_JSON_DEPTH - 1} levels deep"
    return None


FIELD_RULES: dict[str, Rule] = {
    "name": _text(),
    "height": _integer(1, MAX_SIDE),
    "width": _integer(1, MAX_SIDE),
    "channels": _integer(1, 4),
    "color": _choice(COLORS),
    "class_names": _class_names,
    "output_activation": _choice(ACTIVATIONS),
    "resize": _choice(RESIZE_METHODS),
    "layout": _choice(("NHWC",)),
    "input_range": lambda v: None if v is None else _number_pair(v),
    "rescaling": _choice(RESCALING_PLACES),
    "pixel_scale": lambda v: None if v is None else _number(v),
    "mean": _numbers,
    "std": _numbers,
    "channel_order": _choice(CHANNEL_ORDERS),
    "precision": _choice(PRECISIONS),
    "calibration_method": _text(empty=True),
    "calibration_count": _integer(0, 1 << 31),
    "fp32_sha256": _text(empty=True),
    "display_names": _display_names,
    "patch": _ints(2, 1, MAX_PATCH),
    "patch_pads": _ints(4, 0, MAX_PATCH - 1),
    "input_depth": _integer(0, MAX_DEPTH),
    "input_quantization": _quantization,
    "input_name": _text(),
    "edgecnn_version": _text(empty=True),
    "metrics": _mapping,
    "format": _integer(min(READABLE_FORMATS), SPEC_FORMAT),
}
