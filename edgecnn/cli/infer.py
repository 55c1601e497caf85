"""edgecnn-infer: classify images (files or directories) with an edgecnn ONNX model."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgecnn.cli import run_command
from edgecnn.errors import UserError

PROG = "edgecnn-infer"
EPILOG = """examples:
  edgecnn-infer fmnist.onnx shirt.png shoes/
  edgecnn-infer catsdogs.onnx photos/ --top-k 1 --json
  edgecnn-infer catsdogs.onnx photos/ --device cuda

exit status: 0 all images classified, 2 a usage error or any image that could not be read
(bad images in a directory are reported on stderr and skipped; the rest are classified).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Classify images with an ONNX model exported by edgecnn-export. Preprocessing "
        "(size, colour, scaling) follows the ModelSpec stored in the model file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, help="ONNX model written by edgecnn-export")
    parser.add_argument("inputs", nargs="+", help="image files and/or directories (searched recursively)")
    group = parser.add_argument_group("output")
    group.add_argument("--top-k", type=int, default=3, help="labels to show per image (default: %(default)s)")
    group.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    group = parser.add_argument_group("runtime")
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="execution provider: auto uses CUDA when it really starts (default: %(default)s)")
    group.add_argument("--batch-size", type=int, default=32, help="images per inference call (default: %(default)s)")
    return parser


def format_row(source: str, predictions: list[tuple[str, float]], width: int) -> str:
    cells = "  ".join(f"{label:>12} {p:7.4f}" for label, p in predictions)
    return f"{source:<{width}}  {cells}"


def infer_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.top_k < 1:
        raise UserError(f"--batch-size and --top-k must be positive, got {args.batch_size} and {args.top_k}")
    from edgecnn.postprocess import top_k
    from edgecnn.session import Classifier
    from edgecnn.sources import expand_image_paths, iter_images

    paths = expand_image_paths(args.inputs)
    classifier = Classifier(args.model, device=args.device)
    spec = classifier.spec
    print(f"{PROG}: {spec.name} ({len(spec.class_names)} classes, {spec.height}x{spec.width} {spec.color}) "
          f"on {classifier.provider}", file=sys.stderr)
    width = min(60, max(len(str(p)) for p in paths))
    header = f"{'image':<{width}}  " + "  ".join(
        f"{'top-' + str(i + 1):>12} {'prob':>7}" for i in range(min(args.top_k, len(spec.class_names))))
    failed = classified = 0
    started = time.perf_counter()
    batch_paths, batch_frames = [], []

    def flush() -> None:
        nonlocal classified
        if not batch_frames:
            return
        if classified == 0 and not args.json:
            print(header)
        probabilities = classifier.classify(batch_frames)
        for path, predictions in zip(batch_paths, top_k(probabilities, spec.class_names, args.top_k)):
            if args.json:
                record = {"source": str(path), "predictions": [{"label": l, "probability": round(p, 6)} for l, p in predictions]}
                print(json.dumps(record))
            else:
                print(format_row(str(path), predictions, width))
        classified += len(batch_frames)
        batch_paths.clear()
        batch_frames.clear()

    for path, frame, error in iter_images(paths):
        if error is not None:
            print(f"{PROG}: skipped {error}", file=sys.stderr)
            failed += 1
            continue
        batch_paths.append(path)
        batch_frames.append(frame)
        if len(batch_frames) == args.batch_size:
            flush()
    flush()
    elapsed = time.perf_counter() - started
    rate = classified / elapsed if elapsed > 0 else 0.0
    print(f"{PROG}: classified {classified} image(s), {failed} failed, in {elapsed:.2f} s ({rate:.0f} images/s) "
          f"on {classifier.provider}", file=sys.stderr)
    return 2 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of edgecnn-infer."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: infer_command(argv))


if __name__ == "__main__":
    sys.exit(main())
