"""edgecnn-export: Keras run directory or .keras file -> verified ONNX with its ModelSpec inside."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecnn.cli import EXIT_USER_ERROR, import_tensorflow_quietly, run_command
from edgecnn.errors import UserError

PROG = "edgecnn-export"
MIN_OPSET = 13  # the first opset with every op these models need in its current form (Softmax on any axis)
EPILOG = """examples:
  edgecnn-export runs/fmnist -o fmnist.onnx
  edgecnn-export runs/catsdogs/model.keras -o catsdogs.onnx
  edgecnn-export my_model.keras --class-names cat,dog -o my_model.onnx
  edgecnn-export --check catsdogs.onnx --keras runs/catsdogs --images data/cats_vs_dogs/test
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
    parser.add_argument("source", type=Path, nargs="?", help="run directory from edgecnn-train, or a .keras file")
    parser.add_argument("-o", "--output", type=Path, help="ONNX file to write (required when exporting)")
    group = parser.add_argument_group("export")
    group.add_argument("--opset", type=int, default=17,
                       help=f"ONNX opset, {MIN_OPSET} up to the newest tf2onnx writes (default: %(default)s)")
    group.add_argument("--tolerance", type=float, default=1e-5,
                       help="max abs difference on probabilities, Keras vs onnxruntime vs the C reference (default: %(default)s)")
    group.add_argument("--class-names", default=None,
                       help="comma-separated class names, when the .keras file has no class_names.json beside it")
    group.add_argument("--name", default=None, help="model name in the spec (default: the run's model name)")
    check = parser.add_argument_group(
        "check", "Check an exported model instead of exporting: Keras vs onnxruntime vs the C reference "
        "(edgecnn.reference) on random and real inputs, with a per-layer table; exit 2 above --tolerance.")
    check.add_argument("--check", type=Path, metavar="MODEL.onnx", default=None, help="the ONNX file to check")
    check.add_argument("--keras", type=Path, metavar="SOURCE", default=None,
                       help="its run directory or .keras file, to include Keras (default: none)")
    check.add_argument("--images", type=Path, metavar="DIR", default=None,
                       help="real images: a folder of image files or of Fashion-MNIST IDX .gz files "
                       "(default: the model's test data under $EDGECNN_DATA or ../shared/data, when there)")
    return parser


def check_command(args: argparse.Namespace) -> int:
    """edgecnn-export --check: print the three-way report; 0 when within tolerance, else 2."""
    from edgecnn.reference.check import check_model, format_report, keras_predictor

    if args.source is not None or args.output is not None:
        raise UserError("--check takes the ONNX file only; give the Keras model with --keras")
    for flag, path in (("--check", args.check), ("--keras", args.keras), ("--images", args.images)):
        if path is not None and not path.exists():
            raise UserError(f"{flag} {path}: no such file or directory")
    predict = None
    if args.keras is not None:
        import_tensorflow_quietly()
        predict = keras_predictor(args.keras)
    report = check_model(args.check, predict, images=args.images, tolerance=args.tolerance)
    print(format_report(report))
    return 0 if report.passed else EXIT_USER_ERROR


def export_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.check is not None:
        return check_command(args)
    if args.source is None or args.output is None:
        raise UserError("give a SOURCE and -o OUTPUT to export, or --check MODEL.onnx to check")
    if not args.source.exists():
        raise UserError(f"{args.source}: no such file or directory")
    if args.output.suffix != ".onnx":
        raise UserError(f"-o {args.output}: output must end in .onnx")
    from edgecnn.fileio import check_output_path

    check_output_path(args.output, "-o", inputs=(args.source,))
    class_names = tuple(n.strip() for n in args.class_names.split(",")) if args.class_names else None
    import_tensorflow_quietly()
    from tf2onnx.constants import OPSET_TO_IR_VERSION

    from edgecnn.training.export import export_model

    if not MIN_OPSET <= args.opset <= max(OPSET_TO_IR_VERSION):
        raise UserError(f"--opset must be in {MIN_OPSET}..{max(OPSET_TO_IR_VERSION)} (what tf2onnx writes), "
                        f"got {args.opset}")
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
    if "reference" in report.extra:
        print(f"  C ref   {report.extra['reference'].summary()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of edgecnn-export."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: export_command(argv))


if __name__ == "__main__":
    sys.exit(main())
