"""The bundled models on CUDA vs the CPU, one run: latency at batch 1 and 32 (plain run vs IO
binding), FP16, accuracy and agreement on labelled images, and 640x480 video end to end.

    python benchmarks/bench_cuda.py [--photos DIR] [--fmnist DIR] [--runs 200] [--json OUT]

--photos: a cats-vs-dogs folder with cats/ and dogs/ (default: the shared test/ folder);
--fmnist: the folder with t10k-images/labels IDX files. FP16 is the graph converted by
onnxruntime's float16 tool with float32 inputs and outputs kept; it is measured here, not
shipped. Needs onnxruntime-gpu and a GPU (`pip install '.[gpu]'`); the CPU rows are the
obvious alternative, on whatever CPU the GPU machine has, with onnxruntime's default threads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table

from edgecnn.benchmark import time_calls
from edgecnn.cli import infer
from edgecnn.datasets import IDX_FILES, data_root
from edgecnn.models import resolve_model
from edgecnn.session import Classifier
from edgecnn.sources import expand_image_paths, read_idx, read_image


def fp16_copy(path: Path, folder: Path) -> Path:
    """The model with float16 weights and arithmetic, float32 input and output."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(path), keep_io_types=True)
    out = folder / f"{path.stem}-fp16.onnx"
    onnx.save(model, out)
    return out


def latency(classifier: Classifier, batch: np.ndarray, runs: int) -> tuple[float, float]:
    """(median, p95) milliseconds of classifier.predict(batch) after a warm-up."""
    times = time_calls(lambda: classifier.predict(batch), warmup=max(10, runs // 10), min_runs=runs, min_seconds=0.0)
    return statistics.median(times) * 1e3, float(np.percentile(times, 95)) * 1e3


def labelled(name: str, photos: Path, fmnist: Path) -> tuple[list[np.ndarray], np.ndarray]:
    if name.startswith("fmnist"):
        images, labels = (read_idx(fmnist / file) for file in IDX_FILES["test"])
        return list(images), labels
    paths = expand_image_paths([photos])
    return [read_image(p) for p in paths], np.array([0 if p.parent.name.startswith("cat") else 1 for p in paths])


def probabilities(classifier: Classifier, frames: list[np.ndarray], batch: int = 64) -> np.ndarray:
    return np.concatenate([classifier.classify(frames[i : i + batch]) for i in range(0, len(frames), batch)])


def video_fps(model: Path, device: str, folder: Path, frames: int = 600) -> float:
    """edgecnn-infer over a 640x480 MJPEG clip, every frame classified: frames per second end to end."""
    import cv2

    clip = folder / "clip.avi"
    if not clip.exists():
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (640, 480))
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        for i in range(frames):
            writer.write(np.roll(base, 4 * i, axis=1))
        writer.release()
    with open(os.devnull, "w") as sink:
        saved, sys.stdout = sys.stdout, sink
        try:
            start = time.perf_counter()
            code = infer.main([str(model), "--camera", str(clip), "--device", device, "--json"])
            elapsed = time.perf_counter() - start
        finally:
            sys.stdout = saved
    assert code == 0, f"edgecnn-infer exited {code}"
    return frames / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["catsdogs", "fmnist"], help="bundled names or .onnx files")
    parser.add_argument("--photos", type=Path, default=data_root() / "cats_vs_dogs" / "test")
    parser.add_argument("--fmnist", type=Path, default=data_root() / "fashion-mnist")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per cell (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.models:
            fp32 = resolve_model(name)
            variants = {
                "cpu fp32": (fp32, "cpu", False),
                "cuda fp32 run": (fp32, "cuda", False),
                "cuda fp32 iobind": (fp32, "cuda", True),
                "cuda fp16 iobind": (fp16_copy(fp32, folder), "cuda", True),
            }
            frames, labels = labelled(name, args.photos, args.fmnist)
            reference = None
            for label, (path, device, bound) in variants.items():
                classifier = Classifier(path, device=device, io_binding=bound)
                probs = probabilities(classifier, frames)
                reference = probs if reference is None else reference
                record = {
                    "model": name,
                    "variant": label,
                    "provider": classifier.provider,
                    "accuracy": float((probs.argmax(1) == labels).mean()),
                    "agreement": float((probs.argmax(1) == reference.argmax(1)).mean()),
                    "max_dp": float(np.abs(probs - reference).max()),
                }
                for n in (1, 32):
                    batch = classifier.preprocess(frames[:n]).copy()
                    record[f"b{n}_ms"], record[f"b{n}_p95"] = latency(classifier, batch, args.runs)
                record["video_fps"] = (
                    video_fps(path, device, folder) if label in ("cpu fp32", "cuda fp32 iobind") else None
                )
                records.append(record)
                rows.append(
                    [
                        name,
                        label,
                        record["b1_ms"],
                        record["b1_p95"],
                        record["b32_ms"],
                        32e3 / record["b32_ms"],
                        record["accuracy"],
                        record["agreement"],
                        record["max_dp"],
                        record["video_fps"] or "-",
                    ]
                )
    print(f"images: {args.photos} and {args.fmnist}; {args.runs} timed runs per cell")
    print_table(
        ["model", "variant", "b1 ms", "b1 p95", "b32 ms", "b32 img/s", "accuracy", "agree", "max|dp|", "video FPS"],
        [[f"{c:.4g}" if isinstance(c, float) else c for c in row] for row in rows],
    )
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
