"""ModelSpec: validation, JSON round trip, and the round trip through ONNX metadata."""

import dataclasses

import pytest

from edgecnn.spec import METADATA_KEY, ModelSpec


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
        (dict(rescaling="graph"), "needs input_range (0.0, 255.0)"),
        (dict(input_range=(0.0, 255.0)), "needs input_range (0.0, 1.0)"),
    ],
)
def test_invalid_specs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make(**changes)


def test_pixel_scale_follows_who_rescales():
    assert make().pixel_scale == pytest.approx(1 / 255)
    assert make(rescaling="graph", input_range=(0.0, 255.0)).pixel_scale == 1.0


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
