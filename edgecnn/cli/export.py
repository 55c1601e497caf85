"""edgecnn-export: Keras run directory or .keras file -> verified ONNX with its ModelSpec inside."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecnn.cli import import_tensorflow_quietly, run_command
from edgecnn.errors import UserError

PROG = "edgecnn-export"
EPILOG = """examples:
  edgecnn-export runs/fmnist -o fmnist.onnx
  edgecnn-export runs/catsdogs/model.keras -o catsdogs.onnx
  edgecnn-export my_model.keras --class-names cat,dog -o my_model.onnx
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a trained Keras model to ONNX (tf2onnx from_function, dynamic batch, augmentation "
        "and Rescaling(1/255) removed: the runtime rescales). The ModelSpec goes into the ONNX metadata. "
        "The file is written only after onnx.checker and Keras-vs-onnxruntime parity at batch 1 and 8 pass.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, help="run directory from edgecnn-train, or a .keras file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    group = parser.add_argument_group("export")
    group.add_argument("--opset", type=int, default=17, help="ONNX opset (default: %(default)s)")
    group.add_argument("--tolerance", type=float, default=1e-5,
                       help="max abs difference Keras vs onnxruntime on probabilities (default: %(default)s)")
    group.add_argument("--class-names", default=None,
                       help="comma-separated class names, when the .keras file has no class_names.json beside it")
    group.add_argument("--name", default=None, help="model name in the spec (default: the run's model name)")
    return parser


def export_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not args.source.exists():
        raise UserError(f"{args.source}: no such file or directory")
    if args.output.suffix != ".onnx":
        raise UserError(f"-o {args.output}: output must end in .onnx")
    class_names = tuple(n.strip() for n in args.class_names.split(",")) if args.class_names else None
    import_tensorflow_quietly()
    from edgecnn.training.export import export_model

    report = export_model(args.source, args.output, opset=args.opset, tolerance=args.tolerance,
                          class_names=class_names, name=args.name)
    spec = report.spec
    print(f"wrote {report.path} ({report.size_bytes / 1e6:.2f} MB, opset {report.opset})")
    print(f"  model   {spec.name}: input {spec.height}x{spec.width}x{spec.channels} {spec.color} in [0, 1] "
          f"(runtime rescales), {spec.resize} resize, {spec.output_activation} over {len(spec.class_names)} classes")
    if report.removed_layers:
        print(f"  removed {', '.join(report.removed_layers)} (inference graph)")
    print("  ops     " + ", ".join(f"{op}x{n}" for op, n in report.op_counts.items()))
    print("  parity  " + ", ".join(f"batch {b}: max |keras - onnxruntime| = {d:.2e}" for b, d in report.max_abs_diff.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of edgecnn-export."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: export_command(argv))


if __name__ == "__main__":
    sys.exit(main())
