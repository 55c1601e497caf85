"""ModelSpec: validation, JSON round trip, and the round trip through ONNX metadata."""

import dataclasses
import json

import pytest

from edgecnn.spec import METADATA_KEY, PREPROCESS_MODES, SPEC_FORMAT, ModelSpec


def make(**changes) -> ModelSpec:
    base = dict(name="m", height=28, width=28, channels=1, color="gray", class_names=("a", "b", "c"),
                output_activation="softmax", resize="area", metrics={"test": {"accuracy": 0.9}})
    base.update(changes)
    return ModelSpec(**base)


def test_json_round_trip_is_exact():
    spec = make()
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec
    assert again.to_json() == spec.to_json()


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(color="bgr"), "color must be one of"),
        (dict(channels=3), "needs 1 channels"),
        (dict(height=0), "input size must be positive"),
        (dict(resize="cubic"), "resize must be one of"),
        (dict(output_activation="relu"), "output_activation"),
        (dict(output_activation="sigmoid"), "exactly 2 class names"),
        (dict(class_names=("only",)), "at least 2 class names"),
        (dict(layout="NCHW"), "layout must be 'NHWC'"),
        (dict(rescaling="graph", input_range=(0.0, 1.0)), "needs input_range (0, 255)"),
        (dict(input_range=(0.0, 255.0)), "needs input_range (0, 1)"),
        (dict(mean=(0.5, 0.5)), "mean must be 1 finite numbers"),
        (dict(std=(float("nan"),)), "std must be 1 finite numbers"),
        (dict(std=(0.0,)), "must be finite and non-zero"),
        (dict(pixel_scale=0.0), "must be finite and non-zero"),
        (dict(channel_order="bgr"), "a gray model has no channel order"),
        (dict(channel_order="brg"), "channel_order must be one of"),
        (dict(rescaling="graph", mean=(1.0,)), "rescaling 'graph' means the graph takes raw"),
    ],
)
def test_invalid_specs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make(**changes)


def test_pixel_scale_follows_who_rescales():
    assert make().pixel_scale == pytest.approx(1 / 255)
    assert make().input_range == pytest.approx((0.0, 1.0))
    graph = make(rescaling="graph")
    assert graph.pixel_scale == 1.0 and graph.input_range == (0.0, 255.0) and graph.mean == (0.0,)


@pytest.mark.parametrize("mode, low, high", [("tf", -1.0, 1.0), ("torch", -2.1179, 2.64), ("caffe", -123.68, 151.061)])
def test_preprocess_modes_give_keras_ranges(mode, low, high):
    spec = make(channels=3, color="rgb", **PREPROCESS_MODES[mode])
    assert spec.input_range == pytest.approx((low, high), abs=1e-3)
    assert ModelSpec.from_json(spec.to_json()) == spec
    args = spec.preprocess_args()
    assert (args["scale"], args["mean"], args["std"], args["channel_order"]) == (
        spec.pixel_scale, spec.mean, spec.std, spec.channel_order)
    assert mode != "caffe" or "bgr" in spec.describe_input()


def test_format_1_specs_keep_loading():
    """What edgecnn 0.x wrote before normalisation was part of the spec (the bundled models' format)."""
    old = {"name": "m", "height": 28, "width": 28, "channels": 1, "color": "gray", "class_names": ["a", "b", "c"],
           "output_activation": "softmax", "resize": "area", "layout": "NHWC", "input_range": [0.0, 1.0],
           "rescaling": "runtime", "input_name": "input", "edgecnn_version": "0.1.0", "metrics": {}, "format": 1}
    spec = ModelSpec.from_json(json.dumps(old))
    assert spec.pixel_scale == pytest.approx(1 / 255) and spec.mean == (0.0,) and spec.std == (1.0,)
    graph = ModelSpec.from_json(json.dumps({**old, "rescaling": "graph", "input_range": [0.0, 255.0]}))
    assert graph.pixel_scale == 1.0
    assert spec.format == SPEC_FORMAT and ModelSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"format": 99}', "format 99 is not supported"),
        ('{"format": 1, "name": "x"}', "incomplete or malformed"),
    ],
)
def test_from_json_refuses_malformed_text(text, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec.from_json(text)


def test_from_json_refuses_unknown_fields():
    data = make().to_json().replace('"name"', '"colour": "x", "name"')
    with pytest.raises(ValueError, match="unknown fields"):
        ModelSpec.from_json(data)


def test_spec_round_trips_through_onnx_metadata(untrained_fmnist):
    import onnx

    from edgecnn.session import Classifier

    run, onnx_path = untrained_fmnist
    stored = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    written = ModelSpec.from_json(stored[METADATA_KEY])
    read_back = Classifier(onnx_path, device="cpu").spec
    assert read_back == written
    assert read_back.name == "fmnist"
    assert read_back.input_shape == (28, 28, 1)
    assert read_back.color == "gray" and read_back.rescaling == "runtime"
    assert read_back.class_names[0] == "T-shirt/top" and len(read_back.class_names) == 10
    assert dataclasses.asdict(read_back)["edgecnn_version"]
