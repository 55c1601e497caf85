"""Cats vs dogs on the test photos: Keras as a Keras user runs it vs edgecnn as deployed.

Keras: the full model (augmentation inert, Rescaling inside) on image_dataset_from_directory
(TF JPEG decode, tf.image.resize bilinear). edgecnn as deployed: read_image (libjpeg-turbo
with TF's fast IDCT, edgecnn.jpeg) -> Cython preprocess -> onnxruntime. Also edgecnn on
OpenCV's decode (accurate IDCT), which shows what a decoder difference alone costs, and
both decoders' pixel differences from TensorFlow's.

    python benchmarks/parity_catsdogs.py --run runs/catsdogs [--onnx runs/catsdogs/model.onnx]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table

from edgecnn.datasets import data_root

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/catsdogs"), help="run directory with model.keras")
    parser.add_argument("--onnx", type=Path, default=None, help="exported model (default: RUN/model.onnx)")
    parser.add_argument(
        "--data", type=Path, default=data_root() / "cats_vs_dogs" / "test", help="folder with one folder per class"
    )
    args = parser.parse_args()

    from edgecnn.cli import import_tensorflow_quietly

    import_tensorflow_quietly()
    import cv2
    import keras
    import tensorflow as tf

    from edgecnn.session import Classifier
    from edgecnn.sources import read_image

    model = keras.models.load_model(args.run / "model.keras")
    classifier = Classifier(args.onnx or args.run / "model.onnx", device="cpu")
    ds = keras.utils.image_dataset_from_directory(
        args.data, image_size=(180, 180), batch_size=32, shuffle=False, label_mode="binary", verbose=False
    )
    paths = ds.file_paths
    labels = np.concatenate([y.numpy()[:, 0] for _, y in ds]).astype(np.int64)
    start = time.perf_counter()
    p_keras = model.predict(ds, verbose=0)[:, 0]
    t_keras = time.perf_counter() - start

    def edgecnn_probs(decode) -> tuple[np.ndarray, float]:
        out, elapsed = [], 0.0
        for i in range(0, len(paths), 32):
            frames = [decode(p) for p in paths[i : i + 32]]
            start = time.perf_counter()
            out.append(classifier.classify(frames)[:, 1])
            elapsed += time.perf_counter() - start
        return np.concatenate(out), elapsed

    def tf_decode_bgr(path: str) -> np.ndarray:
        rgb = tf.image.decode_image(tf.io.read_file(path), channels=3, expand_animations=False).numpy()
        return np.ascontiguousarray(rgb[:, :, ::-1])

    def opencv_decode(path: str) -> np.ndarray:
        return cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)

    p_ours, t_ours = edgecnn_probs(read_image)
    p_cv, _ = edgecnn_probs(opencv_decode)

    def decoder_row(name: str, decode) -> list[object]:
        per_photo, largest, differing, total = [], 0, 0, 0
        for path in paths:
            d = np.abs(decode(path).astype(np.int16) - tf_decode_bgr(path).astype(np.int16))
            per_photo.append(d.mean())
            largest = max(largest, int(d.max()))
            differing += int((d > 0).sum())
            total += d.size
        return [name, f"{np.mean(per_photo):.3f}", largest, f"{differing / total:.1%}"]

    def row(name: str, p: np.ndarray) -> list[object]:
        d = np.abs(p - p_keras)
        flips = int(((p > 0.5) != (p_keras > 0.5)).sum())
        acc = ((p > 0.5).astype(np.int64) == labels).mean()
        return [name, f"{d.max():.2e}", f"{d.mean():.2e}", flips, f"{acc:.4f}"]

    n = len(paths)
    print(f"{n} test photos from {args.data}; Keras accuracy {((p_keras > 0.5) == labels).mean():.4f}\n")
    print_table(
        ["edgecnn vs Keras (image_dataset_from_directory)", "max |dp|", "mean |dp|", "label flips", "accuracy"],
        [
            row("edgecnn as deployed: read_image -> Cython -> onnxruntime", p_ours),
            row("same, but OpenCV's JPEG decoder (accurate IDCT)", p_cv),
        ],
    )
    print()
    print_table(
        ["JPEG decoder vs tf.image.decode_image", "mean |dpixel|", "max |dpixel|", "values differ"],
        [
            decoder_row("edgecnn read_image (libjpeg-turbo, fast IDCT)", read_image),
            decoder_row("OpenCV imread (accurate IDCT)", opencv_decode),
        ],
    )
    print(
        f"\ntime for {n} photos: Keras predict on the decoded dataset {t_keras:.2f} s; edgecnn preprocess + "
        f"inference {t_ours:.2f} s (decode excluded for both)"
    )


if __name__ == "__main__":
    main()
