"""Every bad input at the CLI boundary is one line and exit 2 (or a quiet exit), never a traceback."""

import gzip
import json
import os
import stat
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecnn.cli import export, infer, train
from edgecnn.sinks import record_video
from edgecnn.spec import METADATA_KEY, ModelSpec


def one_line_error(code, err, expected):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) >= 1
    assert expected in lines[-1], err
    assert ": error: " in lines[-1]


def png(path, value=128, shape=(28, 28)):
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


def with_metadata(model, spec_json, path):
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, spec_json
    onnx.save(model, path)
    return path


def test_a_model_that_fails_inside_onnxruntime_is_one_line(tmp_path, capfd):
    """A Conv whose kernel wants 2 channels where the graph gives it 3: loads, fails at run time."""
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w"], ["conv"]),
        helper.make_node("ReduceMean", ["conv"], ["out"], axes=[2, 3], keepdims=0),
    ]
    weights = numpy_helper.from_array(np.ones((3, 2, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 8, 8, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 3])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    spec = ModelSpec(
        name="bad", height=8, width=8, channels=3, color="rgb", class_names=("a", "b", "c"), output_activation="softmax"
    )
    path = with_metadata(model, spec.to_json(), tmp_path / "conv.onnx")
    code = infer.main([str(path), str(png(tmp_path / "x.png", shape=(8, 8, 3)))])
    err = capfd.readouterr().err
    one_line_error(code, err, "Input channels C is not equal to kernel channels")
    assert "[E:onnxruntime" not in err  # onnxruntime's own log line stays out


@pytest.fixture(scope="module")
def mismatched_model(untrained_fmnist, tmp_path_factory):
    """The untrained fmnist graph (10 outputs) with a spec naming 3 classes."""
    _, good = untrained_fmnist
    model = onnx.load(good)
    spec = ModelSpec.from_json(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))
    del model.metadata_props[:]
    wrong = json.loads(spec.to_json())
    wrong["class_names"] = ["a", "b", "c"]
    wrong["display_names"] = {}  # else the spec itself is refused (10 Korean names for 3 classes)
    return with_metadata(model, json.dumps(wrong), tmp_path_factory.mktemp("mismatch") / "three.onnx")


def test_a_spec_that_disagrees_with_its_graph_is_refused_by_infer_and_check(mismatched_model, tmp_path, capsys):
    code = infer.main([str(mismatched_model), str(png(tmp_path / "x.png"))])
    one_line_error(code, capsys.readouterr().err, "graph output shape (N, 10) does not match the spec")
    code = export.main(["--check", str(mismatched_model)])
    one_line_error(code, capsys.readouterr().err, "graph output shape (N, 10) does not match the spec")


def test_bad_idx_files_for_check_images_are_one_line(untrained_fmnist, tmp_path, capsys):
    _, model = untrained_fmnist
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    for data in (b"not gzip", gzip.compress(b"\x00\x00\x08\x03\x00")):
        bad.write_bytes(data)
        code = export.main(["--check", str(model), "--images", str(tmp_path)])
        one_line_error(code, capsys.readouterr().err, str(bad))


def test_export_refuses_bad_outputs_and_opsets_before_working(untrained_fmnist, tmp_path, capsys):
    run, _ = untrained_fmnist
    (tmp_path / "dir.onnx").mkdir()
    cases = [
        ([str(run), "-o", str(tmp_path / "dir.onnx")], "is a directory"),
        ([str(run), "-o", str(tmp_path / "absent" / "m.onnx")], "no such directory"),
        ([str(run), "-o", str(tmp_path / "m.onnx"), "--opset", "99"], "--opset must be in 13.."),
        ([str(run), "-o", str(tmp_path / "m.onnx"), "--opset", "7"], "--opset must be in 13.."),
    ]
    for argv, message in cases:
        one_line_error(export.main(argv), capsys.readouterr().err, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.onnx"]


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder nobody may write into: read-only tmpfs for root (who ignores modes), mode 0555 otherwise."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("running as root without permission to mount a read-only tmpfs")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_outputs_into_an_unwritable_folder_are_refused_up_front(untrained_fmnist, unwritable_dir, tmp_path, capsys):
    run, _ = untrained_fmnist
    code = export.main([str(run), "-o", str(unwritable_dir / "m.onnx")])
    one_line_error(code, capsys.readouterr().err, "is not writable")
    video = tmp_path / "clip.avi"
    with record_video(video, 30.0) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
    code = infer.main(["--model", "fmnist", "--camera", str(video), "--save", str(unwritable_dir / "x.avi")])
    one_line_error(code, capsys.readouterr().err, "is not writable")


def test_export_refuses_class_names_that_do_not_fit_the_model(untrained_fmnist, tmp_path, capsys):
    run, _ = untrained_fmnist
    code = export.main([str(run / "model.keras"), "--class-names", "a,b,c", "-o", str(tmp_path / "m.onnx")])
    one_line_error(
        code, capsys.readouterr().err, "the model outputs 10 softmax value(s) per image but there are 3 class names"
    )
    assert not list(tmp_path.iterdir())


def test_export_refuses_display_names_that_do_not_fit(untrained_fmnist, tmp_path, capsys):
    run, _ = untrained_fmnist
    out = ["-o", str(tmp_path / "m.onnx")]
    cases = [
        (["--display-names", "de"], "--display-names de: expected LANG=NAME,NAME,..."),
        (["--display-names", "de=a", "--display-names", "de=b"], "--display-names de=b: language 'de' given twice"),
        (["--display-names", "de=a,b"], "--display-names: de: 2 names for 10 classes"),
        (["--display-names", f"x_y={','.join('abcdefghij')}"], "is not a language tag"),
    ]
    for flags, message in cases:
        one_line_error(export.main([str(run), *out, *flags]), capsys.readouterr().err, message)
    assert not list(tmp_path.iterdir())


def test_train_refuses_a_negative_or_huge_seed(tmp_path, capsys):
    for seed in ("-1", str(2**32)):
        code = train.main(["fmnist", "--seed", seed, "--out", str(tmp_path / "run")])
        one_line_error(code, capsys.readouterr().err, "--seed must be in 0..4294967295")


def test_threads_and_workers_are_bounded(tmp_path, capsys):
    image = str(png(tmp_path / "x.png"))
    for flag in ("--threads", "--workers"):
        argv = (
            ["--model", "fmnist", image, flag, "1500"]
            if flag == "--threads"
            else ["--model", "fmnist", "--camera", image, flag, "1500"]
        )
        one_line_error(infer.main(argv), capsys.readouterr().err, f"{flag} 1500: must be")


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.avi"
    with record_video(path, 30.0) as writer:
        for i in range(20):
            writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    return path


def test_save_refuses_a_directory_a_missing_folder_and_the_input_video_itself(clip, tmp_path, capsys):
    (tmp_path / "out.avi").mkdir()
    os.link(clip, tmp_path / "same.avi")  # the input under another name: same inode
    before = clip.read_bytes()
    cases = [
        (tmp_path / "out.avi", "is a directory"),
        (tmp_path / "nowhere" / "x.avi", "no such directory"),
        (clip, "is the input"),
        (tmp_path / "same.avi", "is the input"),
    ]
    for target, message in cases:
        code = infer.main(["--model", "fmnist", "--camera", str(clip), "--save", str(target)])
        one_line_error(code, capsys.readouterr().err, message)
    assert clip.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_save_gives_a_new_file_normal_permissions_and_keeps_an_existing_files_mode(clip, tmp_path, capsys):
    fresh, existing = tmp_path / "fresh.avi", tmp_path / "existing.avi"
    existing.write_bytes(b"old")
    existing.chmod(0o640)
    umask = os.umask(0o022)
    try:
        for out in (fresh, existing):
            assert infer.main(["--model", "fmnist", "--camera", str(clip), "--save", str(out)]) == 0
    finally:
        os.umask(umask)
    capsys.readouterr()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640
    assert int(cv2.VideoCapture(str(existing)).get(cv2.CAP_PROP_FRAME_COUNT)) == 20


def test_names_are_printed_escaped_and_json_stays_valid(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    name = "evil\x1b[2J\nname.png"
    png(folder / name)
    assert infer.main(["--model", "fmnist", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[2J\\nname.png" in out
    assert infer.main(["--model", "fmnist", str(folder), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert record["source"] == str(folder / name)


def test_a_reader_that_goes_away_ends_infer_quietly(tmp_path):
    """`edgecnn-infer DIR | head -2`: no BrokenPipeError traceback, no 'Exception ignored' at exit."""
    for i in range(200):
        png(tmp_path / f"{i:03d}.png", value=i)
    child = subprocess.Popen(
        [sys.executable, "-m", "edgecnn.cli.infer", "--model", "fmnist", "--batch-size", "1", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.readline()
    child.stdout.readline()
    child.stdout.close()  # what head does after two lines
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "Exception ignored" not in err and "Error" not in err, err


def test_json_stays_valid_when_the_model_outputs_nan(tmp_path, capsys):
    """(m - m) / (m - m) is NaN for every input: the table says nan, JSON says null."""
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("Sub", ["m", "m"], ["zero"]),
        helper.make_node("Div", ["zero", "zero"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 8, 8, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    spec = ModelSpec(
        name="nan", height=8, width=8, channels=3, color="rgb", class_names=("a", "b", "c"), output_activation="softmax"
    )
    path = with_metadata(model, spec.to_json(), tmp_path / "nan.onnx")
    image = str(png(tmp_path / "x.png", shape=(8, 8, 3)))
    assert infer.main([str(path), image, "--json"]) == 0
    record = json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert [p["probability"] for p in record["predictions"]] == [None, None, None]
