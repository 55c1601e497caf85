"""edgecnn-infer --ray / edgecnn.ray.classify on a real Ray cluster here: a head started with
`ray start --head` and a second node joining it. The rows equal local edgecnn-infer's, a killed
worker and a stopped driver lose nothing and double nothing, bad files are error rows."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

import pyarrow.parquet as pq

from edgecnn.cli import infer
from edgecnn.ray import MANIFEST, PART_PREFIX

RAY = Path(sys.executable).with_name("ray")
RUN_SECONDS = 600


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """The GCS address of a two-node cluster (one CPU each) started for these tests.

    Ray 2.60 starts clusters with token authentication; every process here (the nodes, the
    drivers the tests start) reads the token from ~/.ray/auth_token, generated if missing."""
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "token"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([str(RAY), "get-auth-token", "--generate"], env=env, capture_output=True, timeout=RUN_SECONDS)
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    head = subprocess.run(
        [str(RAY), "start", "--head", "--port", str(free_port()), "--include-dashboard=false", *common],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )
    assert head.returncode == 0, head.stdout + head.stderr
    address = next(
        line.split("--address=")[1].strip("'\" ") for line in head.stdout.splitlines() if "ray start --address=" in line
    )
    node = subprocess.run(
        [str(RAY), "start", "--address", address, *common], env=env, capture_output=True, text=True, timeout=RUN_SECONDS
    )
    assert node.returncode == 0, node.stdout + node.stderr
    yield address
    subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=RUN_SECONDS)
    if saved is None:
        del os.environ["RAY_AUTH_MODE"]
    else:
        os.environ["RAY_AUTH_MODE"] = saved


def read_rows(output: Path) -> list[dict]:
    parts = sorted(output.glob(f"{PART_PREFIX}*.parquet"))
    return [row for part in parts for row in pq.read_table(part).to_pylist()]


def infer_ray(*args):
    """edgecnn-infer ARGS in a child process: (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "edgecnn.cli.infer", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )
    return done.returncode, done.stdout, done.stderr


def actor_pids() -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", "ray::MapWorker\\(MapBatches\\(BatchClassifier\\)\\)"], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]


@pytest.mark.slow
def test_rows_equal_local_edgecnn_infer_on_the_test_photos_and_both_nodes_take_part(cluster, catsdogs_dir, tmp_path):
    import edgecnn

    photos = catsdogs_dir / "test"
    code, out, err = infer_ray("catsdogs", photos, "--ray", cluster, "--output", tmp_path / "out", "--json")
    assert code == 0, err[-3000:]
    rows = read_rows(tmp_path / "out")
    local = {str(result.path.absolute()): result for result in edgecnn.load("catsdogs").classify_files([photos])}
    assert sorted(row["path"] for row in rows) == sorted(local) and len(rows) == 2000
    for row in rows:
        mine = local[row["path"]]
        assert row["error"] is None
        assert np.array_equal(np.float32(row["probabilities"]), mine.probabilities), row["path"]
        assert row["top_labels"] == [p.label for p in mine.predictions]
        assert np.array_equal(
            np.float32(row["top_probabilities"]), np.float32([p.probability for p in mine.predictions])
        )
    summary = json.loads(out.strip().splitlines()[-1])["summary"]
    assert summary["classified"] == 2000 and summary["errors"] == 0 and summary["workers"] == 2
    assert len(summary["rows_by_node"]) == 2, summary["rows_by_node"]  # the work went to both nodes
    correct = sum(row["top_labels"][0] + "s" == Path(row["path"]).parent.name for row in rows)
    assert summary["correct"] == correct and "top-1" in err
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["class_names"] == ["cat", "dog"] and manifest["model"] == "catsdogs"


def infer_command(photos, cluster, output, *extra):
    return [
        sys.executable,
        "-m",
        "edgecnn.cli.infer",
        "catsdogs",
        str(photos),
        "--ray",
        cluster,
        "--output",
        str(output),
        *extra,
    ]


def start_until_first_part(command, output):
    """edgecnn-infer COMMAND in a child process, returned once it has written its first Parquet part."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + RUN_SECONDS
    while not list(output.glob(f"{PART_PREFIX}*.parquet")):  # classifying, and parts are being written
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()[1][-3000:]
        time.sleep(0.2)
    return child


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_every_file_has_exactly_one_row(cluster, catsdogs_dir, tmp_path):
    output = tmp_path / "out"
    child = start_until_first_part(infer_command(catsdogs_dir / "test", cluster, output, "--batch-size", "8"), output)
    pids = actor_pids()
    assert pids, "no BatchClassifier actor process found"
    os.kill(pids[0], signal.SIGKILL)
    _, err = child.communicate(timeout=RUN_SECONDS)
    assert child.returncode == 0, err[-3000:]
    paths = [row["path"] for row in read_rows(output)]
    assert len(paths) == 2000 and len(set(paths)) == 2000


@pytest.mark.slow
def test_a_stopped_driver_rerun_completes_without_redoing_finished_files(cluster, catsdogs_dir, tmp_path):
    output = tmp_path / "out"
    command = infer_command(catsdogs_dir / "test", cluster, output)
    child = start_until_first_part(command, output)
    child.kill()  # SIGKILL: the driver writes nothing more, a part it was writing stays a temporary file
    child.wait(RUN_SECONDS)
    first = {row["path"] for row in read_rows(output)}
    assert 0 < len(first) < 2000
    done = subprocess.run(command + ["--json"], capture_output=True, text=True, timeout=RUN_SECONDS)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])["summary"]
    assert summary["skipped"] == len(first) and summary["classified"] == 2000 - len(first)
    paths = [row["path"] for row in read_rows(output)]
    assert len(paths) == 2000 and len(set(paths)) == 2000
    assert not list(output.glob(f".{PART_PREFIX}*"))


@pytest.mark.slow
def test_bad_and_corrupt_files_are_error_rows(cluster, catsdogs_dir, tmp_path):
    photos = tmp_path / "photos" / "cats"
    photos.mkdir(parents=True)
    good = sorted((catsdogs_dir / "test" / "cats").glob("*.jpg"))[:3]
    for path in good:
        shutil.copy(path, photos / path.name)
    (photos / "truncated.jpg").write_bytes(good[0].read_bytes()[:300])
    (photos / "not-an-image.png").write_text("hello")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{photos}\n# a comment\n{tmp_path / 'missing.jpg'}\n")
    code, out, err = infer_ray("catsdogs", listing, "--ray", cluster, "--output", tmp_path / "out")
    assert code == 2 and "could not be read" in err  # the job ran to the end; exit 2 as edgecnn-infer's
    rows = {Path(row["path"]).name: row for row in read_rows(tmp_path / "out")}
    assert len(rows) == 6 and sum(row["error"] is None for row in rows.values()) == 3
    assert "missing.jpg" in rows and rows["missing.jpg"]["error"]
    assert rows["truncated.jpg"]["error"] and rows["not-an-image.png"]["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ray"], "--ray and --output go together"),
        (["--output", "out"], "--ray and --output go together"),
        (["--ray", "--output", "out", "--camera", "0"], "--camera does not go with --ray"),
    ],
)
def test_ray_usage_errors_are_one_line(args, message, capsys, catsdogs_dir):
    assert infer.main(["catsdogs", str(catsdogs_dir / "test" / "cats"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_an_output_folder_of_another_model_is_refused(tmp_path, capsys, catsdogs_dir):
    output = tmp_path / "out"
    output.mkdir()
    (output / MANIFEST).write_text(json.dumps({"model": "fmnist", "sha256": "0" * 64, "top": 3}))
    assert infer.main(["catsdogs", str(catsdogs_dir / "test" / "cats"), "--ray", "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert "holds the results of another model or top-k ('fmnist', top 3)" in err and len(err.splitlines()) == 1


def test_an_unreachable_cluster_is_one_line(tmp_path, catsdogs_dir):
    port = free_port()  # nothing listens there
    code, _, err = infer_ray(
        "catsdogs", catsdogs_dir / "test" / "cats", "--ray", f"127.0.0.1:{port}", "--output", tmp_path / "out"
    )
    assert code == 2 and f"--ray 127.0.0.1:{port}: cannot reach a Ray cluster" in err.strip().splitlines()[-1]
    assert "Traceback" not in err


def test_ray_without_the_extra_says_which_pip_command_brings_it(tmp_path, catsdogs_dir):
    argv = ["catsdogs", str(catsdogs_dir / "test" / "cats"), "--ray", "--output", str(tmp_path / "out")]
    code = f"import sys; sys.modules['ray'] = None; from edgecnn.cli import infer; sys.exit(infer.main({argv!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=RUN_SECONDS)
    assert done.returncode == 2
    assert done.stderr.strip() == "edgecnn-infer: error: Ray is not installed: pip install 'edgecnn[ray]'"
