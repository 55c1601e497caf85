"""ModelSpec: the preprocessing and label contract that travels inside the ONNX file.

The exporter writes it as JSON into the ONNX `metadata_props` under the key
`edgecnn.spec`; the runtime reads it back and never guesses.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

METADATA_KEY = "edgecnn.spec"
SPEC_FORMAT = 1

# Upper bounds: a spec is read from a file someone else made, so every size is capped.
MAX_SPEC_BYTES = 1 << 20  # the JSON text
MAX_JSON_DEPTH = 8  # nesting of objects and arrays (metrics)
MAX_SIDE = 8192  # input height and width
MAX_CLASSES = 100_000
MAX_TEXT = 256  # characters in a name, class name, input name or version

COLORS = ("gray", "rgb")
RESIZE_METHODS = ("bilinear", "area")
ACTIVATIONS = ("softmax", "sigmoid")
RESCALING_PLACES = ("runtime", "graph")


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

    def __post_init__(self) -> None:
        def bad(what: str) -> ValueError:
            return ValueError(f"invalid model spec: {what}")

        for item in dataclasses.fields(self):
            problem = FIELD_RULES[item.name](getattr(self, item.name))
            if problem:
                raise bad(f"{item.name} {problem}")
        if self.channels != (1 if self.color == "gray" else 3):
            raise bad(f"color {self.color!r} needs {1 if self.color == 'gray' else 3} channels, got {self.channels}")
        expected_range = (0.0, 1.0) if self.rescaling == "runtime" else (0.0, 255.0)
        if tuple(self.input_range) != expected_range:
            raise bad(f"rescaling {self.rescaling!r} needs input_range {expected_range}, got {tuple(self.input_range)}")
        n = len(self.class_names)
        if self.output_activation == "sigmoid" and n != 2:
            raise bad(f"a sigmoid output needs exactly 2 class names, got {n}")
        if self.output_activation == "softmax" and n < 2:
            raise bad(f"a softmax output needs at least 2 class names, got {n}")

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
        if data.get("format") != SPEC_FORMAT or isinstance(data.get("format"), bool):
            raise ValueError(f"model spec format {data.get('format')!r} is not supported (this edgecnn reads {SPEC_FORMAT})")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model spec has unknown fields {unknown}")
        missing = sorted(f.name for f in dataclasses.fields(cls) if f.name not in data
                         and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        if missing:
            raise ValueError(f"model spec is incomplete: missing {missing}")
        # JSON arrays become the tuples the dataclass holds; the rules check their contents.
        data = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
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
            raise ValueError(f"graph input shape {_shown(inputs[0][1])} does not match the spec's "
                             f"(N, {self.height}, {self.width}, {self.channels})")
        if not outputs:
            raise ValueError("graph has no outputs")
        width = 1 if self.output_activation == "sigmoid" else len(self.class_names)
        if not _dims_fit(outputs[0], (None, width)):
            what = "1 value (sigmoid)" if width == 1 else f"{width} values, one per class name"
            raise ValueError(f"graph output shape {_shown(outputs[0])} does not match the spec: "
                             f"needs (N, {width}): {what}")


def onnx_graph_io(model: Any) -> tuple[list[tuple[str, list[Any]]], list[list[Any]]]:
    """(inputs, outputs) of an onnx.ModelProto in the form `ModelSpec.check_graph` takes."""
    initializers = {t.name for t in model.graph.initializer}

    def dims(value: Any) -> list[Any]:
        return [d.dim_value if d.HasField("dim_value") else d.dim_param or None
                for d in value.type.tensor_type.shape.dim]

    inputs = [(v.name, dims(v)) for v in model.graph.input if v.name not in initializers]
    return inputs, [dims(v) for v in model.graph.output]


def _dims_fit(shape: Sequence[Any], expected: Sequence[int | None]) -> bool:
    if len(shape) != len(expected):
        return False
    return all(want is None or not isinstance(got, int) or got == want for got, want in zip(shape, expected))


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
        return None if isinstance(value, str) and value in options else f"must be one of {tuple(options)}, got {value!r}"
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


def _number_pair(value: Any) -> str | None:
    ok = (isinstance(value, tuple) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
    return None if ok else f"must be two finite numbers, got {value!r}"


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
    "input_range": _number_pair,
    "rescaling": _choice(RESCALING_PLACES),
    "input_name": _text(),
    "edgecnn_version": _text(empty=True),
    "metrics": _mapping,
    "format": _integer(SPEC_FORMAT, SPEC_FORMAT),
}
