"""Fashion-MNIST inference path: edgecnn (Cython preprocess + onnxruntime) vs Keras predict.

Same 10,000 test images (uint8 28x28 from the IDX file) for both. Prints throughput at
batch 256, latency at batch 1, and how often the two agree on the top-1 label.

    python benchmarks/bench_infer.py --run runs/fmnist [--onnx runs/fmnist/model.onnx]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_seconds, print_table

from edgecnn.datasets import data_root

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/fmnist"), help="run directory with model.keras")
    parser.add_argument("--onnx", type=Path, default=None, help="exported model (default: RUN/model.onnx)")
    parser.add_argument("--data", type=Path, default=data_root() / "fashion-mnist")
    args = parser.parse_args()
    onnx_path = args.onnx or args.run / "model.onnx"

    from edgecnn.cli import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from edgecnn.datasets import IDX_FILES
    from edgecnn.session import Classifier
    from edgecnn.sources import read_idx

    images = read_idx(args.data / IDX_FILES["test"][0])
    model = keras.models.load_model(args.run / "model.keras")
    classifier = Classifier(onnx_path, device="cpu")
    frames = list(images)
    batch = 256

    def keras_all() -> np.ndarray:
        return model.predict(images[..., None].astype(np.float32) / np.float32(255), batch_size=batch, verbose=0)

    def edgecnn_all() -> np.ndarray:
        return np.concatenate([classifier.classify(frames[i : i + batch]) for i in range(0, len(frames), batch)])

    expected, got = keras_all(), edgecnn_all()
    agree = int((expected.argmax(1) == got.argmax(1)).sum())
    t_keras = median_seconds(keras_all, repeats=3)
    t_edge = median_seconds(edgecnn_all, repeats=3)
    one = images[:1]
    t_keras_1 = median_seconds(lambda: model.predict(one[..., None] / np.float32(255), verbose=0), repeats=50)
    t_call_1 = median_seconds(lambda: model(one[..., None] / np.float32(255), training=False), repeats=50)
    t_edge_1 = median_seconds(lambda: classifier.classify([one[0]]), repeats=200)
    t_pre_1 = median_seconds(lambda: classifier.preprocess([one[0]]), repeats=200)

    n = len(images)
    print(f"Fashion-MNIST test set: {n} images, onnxruntime on {classifier.provider}\n")
    print_table(
        ["path", "batch", "total ms", "images/s", "speed-up vs Keras predict"],
        [
            ["Keras predict (x/255)", batch, f"{t_keras * 1e3:.0f}", f"{n / t_keras:.0f}", "1.0x"],
            [
                "edgecnn preprocess + onnxruntime",
                batch,
                f"{t_edge * 1e3:.0f}",
                f"{n / t_edge:.0f}",
                f"{t_keras / t_edge:.1f}x",
            ],
        ],
    )
    print()
    print_table(
        ["path, one image", "ms", "speed-up vs Keras predict"],
        [
            ["Keras predict", f"{t_keras_1 * 1e3:.2f}", "1.0x"],
            ["Keras model(x) call", f"{t_call_1 * 1e3:.2f}", f"{t_keras_1 / t_call_1:.1f}x"],
            ["edgecnn preprocess + onnxruntime", f"{t_edge_1 * 1e3:.3f}", f"{t_keras_1 / t_edge_1:.0f}x"],
            ["  of which preprocess", f"{t_pre_1 * 1e3:.3f}", ""],
        ],
    )
    print(
        f"\ntop-1 agreement Keras vs edgecnn: {agree} / {n} ({agree / n:.2%}); "
        f"max |p_keras - p_edgecnn| = {np.abs(expected - got).max():.2e}"
    )


if __name__ == "__main__":
    main()
