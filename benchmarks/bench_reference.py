"""catsdogs at batch 1: the C reference vs onnx's ReferenceEvaluator vs onnxruntime, one run.

Question: is the C reference fast enough to check every export (target: >= 20x faster
than onnx.reference.ReferenceEvaluator, the other independent implementation at hand),
and how far is it from onnxruntime? All single-threaded (BLAS and onnxruntime pinned to
one thread; the C reference has no threads), identical input, setup outside the timed
region, medians over repeats.

    python benchmarks/bench_reference.py [--model catsdogs.onnx]
    python benchmarks/bench_reference.py --zoo [FOLDER]

Without --model it uses runs/catsdogs/model.onnx when present, else exports an untrained
catsdogs model (needs the [train] extra). --zoo instead times the test model zoo
(tests/zoo.py; models missing from FOLDER are exported first, needs [train]): C reference
vs onnxruntime, both at batch 1 on one thread, with the largest output difference.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy: ReferenceEvaluator's im2col matmul stays single-threaded

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from _common import REPO, median_seconds  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from edgecnn.benchmark import time_calls  # noqa: E402
from edgecnn.reference import ReferenceModel  # noqa: E402


def default_model(tmp: Path) -> Path:
    trained = REPO / "runs" / "catsdogs" / "model.onnx"
    if trained.is_file():
        return trained
    from edgecnn.cli import import_tensorflow_quietly

    import_tensorflow_quietly()
    from edgecnn.training import registry
    from edgecnn.training.export import export_model

    recipe = registry.get("catsdogs")
    recipe.build().save(tmp / "model.keras")
    (tmp / "class_names.json").write_text(json.dumps(list(recipe.class_names)))
    return export_model(tmp / "model.keras", tmp / "catsdogs.onnx").path


def export_zoo(folder: Path) -> dict[str, Path]:
    """NAME -> folder/NAME.onnx for the test zoo (tests/zoo.py), exported by edgecnn where missing."""
    sys.path.insert(0, str(REPO / "tests"))
    from zoo import ZOO

    from edgecnn.training.export import export_model

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, entry in ZOO.items():
        paths[name] = folder / f"{name}.onnx"
        if not paths[name].is_file():
            entry.build().save(folder / f"{name}.keras")
            size = (96, 96) if "--input-size" in entry.export_args else None
            mode = entry.export_args[1] if entry.export_args[:1] == ("--preprocess",) else None
            export_model(
                folder / f"{name}.keras", paths[name], class_names=entry.class_names, input_size=size, preprocess=mode
            )
    return paths


def zoo_table(folder: Path, repeats: int) -> None:
    """Per zoo model: C reference and onnxruntime median ms at batch 1, and max |diff| of the outputs."""
    paths = export_zoo(folder)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    print(f"model zoo from {folder}, batch 1, single-threaded, medians of {repeats}")
    print(f"{'model':<22} {'input':>9} {'nodes':>6} {'C ref ms':>9} {'ort ms':>8} {'C / ort':>8} {'max|diff|':>10}")
    for name, path in paths.items():
        proto = onnx.load(path)
        shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]]
        x = np.random.default_rng(0).uniform(0, 1, (1, *shape)).astype(np.float32)
        reference = ReferenceModel(proto)
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feed = {proto.graph.input[0].name: x}
        diff = float(np.abs(reference(x) - session.run(None, feed)[0]).max())
        c_ms = median_seconds(partial(reference, x), repeats, warmup=2) * 1e3
        ort_ms = median_seconds(partial(session.run, None, feed), repeats, warmup=2) * 1e3
        print(
            f"{name:<22} {'x'.join(map(str, shape)):>9} {len(proto.graph.node):>6} {c_ms:>9.1f} {ort_ms:>8.2f} "
            f"{c_ms / ort_ms:>7.1f}x {diff:>10.2e}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="catsdogs .onnx (default: see above)")
    parser.add_argument(
        "--repeats", type=int, default=30, help="timed runs for the fast engines (default: %(default)s)"
    )
    parser.add_argument(
        "--slow-repeats", type=int, default=5, help="timed runs of ReferenceEvaluator (default: %(default)s)"
    )
    parser.add_argument(
        "--zoo",
        type=Path,
        nargs="?",
        const=Path("runs/zoo"),
        default=None,
        help="time the test model zoo, exported into this folder, instead (default folder: %(const)s)",
    )
    args = parser.parse_args(argv)
    if args.zoo is not None:
        zoo_table(args.zoo, min(args.repeats, 10))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or default_model(Path(tmp))
        proto = onnx.load(path)
    name = proto.graph.input[0].name
    shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = np.random.default_rng(0).random((1, *shape), dtype=np.float32)

    reference = ReferenceModel(proto)
    evaluator = ReferenceEvaluator(proto)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])

    engines = {
        "C reference (edgecnn.reference)": (lambda: reference(x), args.repeats),
        "onnx ReferenceEvaluator": (lambda: evaluator.run(None, {name: x})[0], args.slow_repeats),
        "onnxruntime (1 thread)": (lambda: session.run(None, {name: x})[0], args.repeats),
    }
    expected = session.run(None, {name: x})[0]
    rows = []
    for label, (fn, repeats) in engines.items():
        diff = float(np.abs(np.asarray(fn()) - expected).max())
        ts = time_calls(fn, warmup=2, min_runs=repeats, min_seconds=0.0)
        rows.append((label, statistics.median(ts) * 1e3, min(ts) * 1e3, repeats, diff))

    slow = rows[1][1]
    print(f"model {path} ({' x '.join(map(str, shape))}), batch 1, single-threaded, {os.cpu_count()} cores visible")
    print(f"{'engine':<34} {'median ms':>10} {'min ms':>9} {'runs':>5} {'vs RefEval':>11} {'max|diff vs ort|':>17}")
    for label, median, best, repeats, diff in rows:
        print(f"{label:<34} {median:>10.2f} {best:>9.2f} {repeats:>5} {slow / median:>10.1f}x {diff:>17.2e}")
    speedup = slow / rows[0][1]
    print(
        f"C reference is {speedup:.1f}x faster than ReferenceEvaluator (target >= 20x): "
        f"{'OK' if speedup >= 20 else 'MISSED'}"
    )
    return 0 if speedup >= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
