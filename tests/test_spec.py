"""ModelSpec: validation, JSON round trip, and the round trip through ONNX metadata."""

import dataclasses
import json

import pytest

from edgecnn.spec import METADATA_KEY, PREPROCESS_MODES, SPEC_FORMAT, ModelSpec


def make(**changes) -> ModelSpec:
    base = dict(
        name="m",
        height=28,
        width=28,
        channels=1,
        color="gray",
        class_names=("a", "b", "c"),
        output_activation="softmax",
        resize="area",
        metrics={"test": {"accuracy": 0.9}},
    )
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
        (dict(height=0), "height must be in 1..8192, got 0"),
        (dict(resize="cubic"), "resize must be one of"),
        (dict(output_activation="relu"), "output_activation"),
        (dict(output_activation="sigmoid"), "exactly 2 class names"),
        (dict(class_names=("only",)), "at least 2 class names"),
        (dict(layout="NCHW"), "layout must be one of ('NHWC',)"),
        (dict(rescaling="graph", input_range=(0.0, 1.0)), "needs input_range (0, 255)"),
        (dict(input_range=(0.0, 255.0)), "needs input_range (0, 1)"),
        (dict(mean=(0.5, 0.5)), "mean must be 1 finite numbers"),
        (dict(std=(float("nan"),)), "must be a finite number, got nan"),
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
        spec.pixel_scale,
        spec.mean,
        spec.std,
        spec.channel_order,
    )
    assert mode != "caffe" or "bgr" in spec.describe_input()


def test_format_1_specs_keep_loading():
    """What edgecnn 0.x wrote before normalisation was part of the spec (the bundled models' format)."""
    old = {
        "name": "m",
        "height": 28,
        "width": 28,
        "channels": 1,
        "color": "gray",
        "class_names": ["a", "b", "c"],
        "output_activation": "softmax",
        "resize": "area",
        "layout": "NHWC",
        "input_range": [0.0, 1.0],
        "rescaling": "runtime",
        "input_name": "input",
        "edgecnn_version": "0.1.0",
        "metrics": {},
        "format": 1,
    }
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
        ('{"format": 1, "name": "x"}', "incomplete: missing"),
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


BASE = dict(
    format=1,
    name="m",
    height=28,
    width=28,
    channels=1,
    color="gray",
    class_names=["a", "b"],
    output_activation="softmax",
)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(height=28.0), "height must be an integer, got 28.0"),
        (dict(width=True), "width must be an integer, got True"),
        (dict(height=100_000), "height must be in 1..8192"),
        (dict(class_names=["a", None]), r"class_names \[1\] must be a string, got None"),
        (dict(class_names="ab"), "class_names must be a list of strings"),
        (dict(class_names=["a", ""]), r"class_names \[1\] must not be empty"),
        (dict(class_names=["a", "b\x1b[2J"]), r"class_names \[1\] must not hold control characters"),
        (dict(class_names=["a", "a"]), "class_names must be distinct"),
        (dict(class_names=[str(i) for i in range(100_001)]), "at most 100000 names"),
        (dict(class_names=["a", "x" * 300]), "at most 256 characters"),
        (dict(name=7), "name must be a string, got 7"),
        (dict(input_range=[0, "1"]), "input_range must be two finite numbers"),
        (dict(input_range=[0, float("nan")]), "input_range must be two finite numbers"),
        (dict(metrics=[1]), "metrics must be an object"),
        (dict(metrics={"a": [[[[[[[[1]]]]]]]]}), "nested more than 8 levels"),
        (dict(format=True), "format True is not supported"),
        (dict(color=None), "color must be one of"),
    ],
)
def test_from_json_checks_every_type_and_bound_in_one_line(changes, message):

    text = json.dumps({**BASE, **changes})
    with pytest.raises(ValueError, match=message) as info:
        ModelSpec.from_json(text)
    assert "\n" not in str(info.value)


def test_from_json_refuses_huge_and_deeply_nested_text_without_a_traceback():
    with pytest.raises(ValueError, match="nested too deeply"):
        ModelSpec.from_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="characters long"):
        ModelSpec.from_json(" " * (2 << 20))


def test_every_field_has_a_validation_rule():
    from edgecnn.spec import FIELD_RULES

    assert set(FIELD_RULES) == {f.name for f in dataclasses.fields(ModelSpec)}


@pytest.mark.parametrize(
    "inputs, outputs, message",
    [
        ([("input", [None, 28, 28, 1])], [[None, 3]], r"graph output shape \(N, 3\) does not match the spec"),
        ([("input", ["batch", 28, 28, 3])], [["batch", 2]], r"graph input shape \(N, 28, 28, 3\) does not match"),
        ([("x", [None, 28, 28, 1])], [[None, 2]], "graph inputs \\['x'\\] do not match"),
        ([("input", [None, 28, 28, 1]), ("extra", [1])], [[None, 2]], "do not match"),
        ([("input", [None, 28, 28, 1])], [], "no outputs"),
    ],
)
def test_check_graph_refuses_a_spec_that_disagrees_with_the_graph(inputs, outputs, message):
    spec = ModelSpec.from_json(json.dumps(BASE))
    spec.check_graph([("input", ["N", 28, 28, 1])], [["N", 2]])  # symbolic batch: fits
    with pytest.raises(ValueError, match=message):
        spec.check_graph(inputs, outputs)


def test_display_names_round_trip_and_serve_language_tags():
    spec = make(display_names={"ko": ["가", "나", "다"], "pt-BR": ("á", "b", "c")})
    assert spec.display_names == {"ko": ("가", "나", "다"), "pt-BR": ("á", "b", "c")}
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec and "가" in spec.to_json(), "Hangul is stored as text, not escapes"
    assert spec.labels("ko") == ("가", "나", "다") and spec.labels("ko-KR") == ("가", "나", "다")
    assert spec.labels("pt-BR") == ("á", "b", "c") and spec.labels("pt") == ("a", "b", "c")
    assert spec.labels(None) == spec.labels("fr") == ("a", "b", "c")


@pytest.mark.parametrize(
    "display_names, message",
    [
        ({"ko": ["가", "나"]}, r"display_names\['ko'\] must hold 3 names \(one per class\), got 2"),
        ({"Korean": ["가", "나", "다"]}, "key 'Korean' is not a language tag"),
        ({"ko": ["가", "가", "다"]}, r"display_names \['ko'\] must be distinct"),
        ({"ko": ["가", "", "다"]}, r"display_names \['ko'\] \[1\] must not be empty"),
        ({"ko": "가나다"}, r"display_names \['ko'\] must be a list of strings"),
        (["ko"], "display_names must be an object from language tag to class names"),
    ],
)
def test_invalid_display_names_are_refused_in_one_line(display_names, message):
    text = json.dumps({**BASE, "class_names": ["a", "b", "c"], "display_names": display_names})
    with pytest.raises(ValueError, match=message) as info:
        ModelSpec.from_json(text)
    assert "\n" not in str(info.value)


def test_format_2_specs_without_display_names_keep_loading():
    data = json.loads(make().to_json())
    del data["display_names"]
    data["format"] = 2
    spec = ModelSpec.from_json(json.dumps(data))
    assert spec.display_names == {} and spec.format == SPEC_FORMAT == 3
