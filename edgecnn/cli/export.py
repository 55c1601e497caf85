"""edgecnn-export: Keras run directory or .keras file -> verified ONNX with its ModelSpec inside."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgecnn.cli import EXIT_USER_ERROR, import_tensorflow_quietly, run_command
from edgecnn.errors import EdgecnnError
from edgecnn.parity import BATCH_SIZES, MIN_OPSET, OPSET, TOLERANCE
from edgecnn.spec import PREPROCESS_MODES

if TYPE_CHECKING:
    from edgecnn.training.export import ExportReport

PROG = "edgecnn-export"
# library parameters -> flags
FLAGS = {"class_names": "--class-names", "display_names": "--display-names", "input_size": "--input-size"}
EPILOG = """examples:
  edgecnn-export runs/fmnist -o fmnist.onnx
  edgecnn-export runs/catsdogs/model.keras -o catsdogs.onnx
  edgecnn-export my_model.keras --class-names cat,dog -o my_model.onnx
  edgecnn-export mobilenet_pets.keras --class-names cat,dog --preprocess tf -o pets.onnx
  edgecnn-export any_size.keras --class-names a,b,c --input-size 224x224 -o any_size.onnx
  edgecnn-export --check catsdogs.onnx --keras runs/catsdogs --images data/cats_vs_dogs/test
  edgecnn-export catsdogs.onnx --int8 --calibrate data/cats_vs_dogs/train -o catsdogs-int8.onnx
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a trained Keras image classifier (Sequential or functional, nested models included) "
        "to ONNX (tf2onnx from_function over model(x, training=False), dynamic batch, augmentation and a leading "
        "Rescaling(1/255) removed: the runtime rescales). The ModelSpec goes into the ONNX metadata. "
        "The file is written only after onnx.checker and Keras-vs-onnxruntime parity at batch "
        + " and ".join(map(str, BATCH_SIZES))
        + " pass.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, nargs="?", help="run directory from edgecnn-train, or a .keras file")
    parser.add_argument("-o", "--output", type=Path, help="ONNX file to write (required when exporting)")
    group = parser.add_argument_group("export")
    group.add_argument(
        "--opset",
        type=int,
        default=OPSET,
        help=f"ONNX opset, {MIN_OPSET} up to the newest tf2onnx writes (default: %(default)s)",
    )
    group.add_argument(
        "--tolerance",
        type=float,
        default=TOLERANCE,
        help="max abs difference on probabilities, Keras vs onnxruntime vs the C reference (default: %(default)s)",
    )
    group.add_argument(
        "--class-names",
        default=None,
        help="comma-separated class names, when the .keras file has no class_names.json beside it",
    )
    group.add_argument(
        "--display-names",
        action="append",
        default=None,
        metavar="LANG=NAMES",
        help="class names people read in language LANG, comma-separated in class order, e.g. ko=고양이,개; "
        "repeat for more languages (default: the registered recipe's, none for other models)",
    )
    group.add_argument("--name", default=None, help="model name in the spec (default: the run's model name)")
    group.add_argument(
        "--input-size",
        default=None,
        metavar="HxW",
        help="input size to export a model that takes any size, e.g. 224x224 (default: the model's)",
    )
    norm = parser.add_argument_group(
        "input normalisation",
        "Only for a model that expects normalised input from outside (as Keras Applications do with "
        "preprocess_input); the runtime then writes (pixel * scale - mean) / std per channel. A leading "
        "Rescaling(1/255) is removed and done by the runtime; other Rescaling/Normalization layers stay in the graph.",
    )
    norm.add_argument(
        "--preprocess",
        choices=sorted(PREPROCESS_MODES),
        default=None,
        help="Keras Applications' modes: tf = [-1, 1]; torch = /255 then ImageNet mean/std; "
        "caffe = BGR with the ImageNet mean subtracted; unit = /255 (default: from the model)",
    )
    norm.add_argument("--mean", default=None, help="comma-separated per-channel mean, after --scale (default: 0)")
    norm.add_argument("--std", default=None, help="comma-separated per-channel std (default: 1)")
    norm.add_argument(
        "--channel-order", choices=("rgb", "bgr"), default=None, help="channel order the model takes (default: rgb)"
    )
    check = parser.add_argument_group(
        "check",
        "Check an exported model instead of exporting: Keras vs onnxruntime vs the C reference "
        "(edgecnn.reference) on random and real inputs, with a per-layer table; exit 2 above --tolerance.",
    )
    check.add_argument("--check", type=Path, metavar="MODEL.onnx", default=None, help="the ONNX file to check")
    check.add_argument(
        "--keras",
        type=Path,
        metavar="SOURCE",
        default=None,
        help="its run directory or .keras file, to include Keras (default: none)",
    )
    check.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        default=None,
        help="real images: a folder of image files or of Fashion-MNIST IDX .gz files "
        "(default: the model's test data under $EDGECNN_DATA or ../shared/data, when there)",
    )
    add_int8_arguments(parser)
    return parser


def parse_size(text: str) -> tuple[int, int]:
    """'224x224' -> (224, 224)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise EdgecnnError(f"--input-size must be HxW with positive integers, e.g. 224x224, got {text!r}")
    return int(parts[0]), int(parts[1])


def parse_floats(flag: str, text: str) -> tuple[float, ...]:
    """'0.5,0.5,0.5' -> (0.5, 0.5, 0.5)."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise EdgecnnError(f"{flag} must be comma-separated numbers, got {text!r}") from None


def parse_display_names(values: list[str]) -> dict[str, tuple[str, ...]]:
    """--display-names LANG=NAME,NAME,... (repeated) as {LANG: (NAME, ...)}."""
    display_names: dict[str, tuple[str, ...]] = {}
    for value in values:
        language, sep, names = value.partition("=")
        if not sep or not language.strip() or not names.strip():
            raise EdgecnnError(f"--display-names {value}: expected LANG=NAME,NAME,... such as ko=고양이,개")
        if language.strip() in display_names:
            raise EdgecnnError(f"--display-names {value}: language {language.strip()!r} given twice")
        display_names[language.strip()] = tuple(n.strip() for n in names.split(","))
    return display_names


def add_int8_arguments(parser: argparse.ArgumentParser) -> None:
    """The --int8 group: quantise an exported FP32 .onnx instead of exporting a Keras model."""
    from edgecnn.training.quantize import CALIBRATION_COUNT, CALIBRATION_METHODS

    group = parser.add_argument_group(
        "int8",
        "Quantise an exported FP32 model (SOURCE is its .onnx): static INT8 post-training quantisation "
        "(QDQ, uint8 activations, int8 per-channel weights). The file is written only if, on the labelled images, "
        "accuracy >= FP32 - 0.5 pt and the top-1 agrees with FP32 on >= 99%% of them.",
    )
    group.add_argument("--int8", action="store_true", help="quantise SOURCE (an edgecnn .onnx) to INT8")
    group.add_argument(
        "--calibrate",
        type=Path,
        metavar="DIR",
        default=None,
        help="calibration images in the model's input format, labelled or not "
        "(default: the model's training data, when known and found)",
    )
    group.add_argument(
        "--validate",
        type=Path,
        metavar="DIR",
        default=None,
        help="labelled images for the accuracy gate: one folder per class, or Fashion-MNIST IDX files "
        "(default: the model's test data, when known and found)",
    )
    group.add_argument(
        "--calibration-count",
        type=int,
        default=CALIBRATION_COUNT,
        help="images drawn (seeded) from --calibrate (default: %(default)s)",
    )
    group.add_argument(
        "--calibration-method",
        choices=CALIBRATION_METHODS,
        default="minmax",
        help="how activation ranges are chosen (default: %(default)s)",
    )


def int8_command(args: argparse.Namespace) -> int:
    """edgecnn-export MODEL.onnx --int8: quantise, gate, print the report; 2 when the gate refuses."""
    from edgecnn.training.quantize import quantize_model

    if args.source.suffix != ".onnx":
        raise EdgecnnError(f"--int8: SOURCE must be an exported .onnx file, got {args.source}")
    for flag, path in (("--calibrate", args.calibrate), ("--validate", args.validate)):
        if path is not None and not path.exists():
            raise EdgecnnError(f"{flag} {path}: no such file or directory")
    if args.calibration_count < 1:
        raise EdgecnnError(f"--calibration-count must be >= 1, got {args.calibration_count}")
    report = quantize_model(
        args.source,
        args.output,
        calibrate=args.calibrate,
        validate=args.validate,
        count=args.calibration_count,
        method=args.calibration_method,
    )
    gate = report.gate
    print(
        f"  calib   {report.spec.calibration_count} images from {report.calibration_where} "
        f"({report.spec.calibration_method})"
    )
    print(
        "  graph   "
        + ", ".join(f"{what}: {n}" for what, n in report.changes.items())
        + "; onnxruntime runs "
        + ", ".join(f"{op}x{n}" for op, n in report.ops.items())
    )
    print(f"  input   {report.spec.describe_input()}")
    print(
        f"  gate    {gate.count} labelled images from {report.validation_where}: FP32 accuracy "
        f"{gate.baseline_accuracy:.4f}, INT8 {gate.accuracy:.4f} "
        f"({(gate.accuracy - gate.baseline_accuracy) * 100:+.2f} pt), "
        f"top-1 agreement {gate.agreement:.4f}, max |Δp| {gate.max_abs_dp:.4f}"
    )
    if not report.passed:
        raise EdgecnnError(f"INT8 accuracy gate failed ({'; '.join(report.reasons)}); nothing written")
    print(f"wrote {report.path} ({report.size_bytes / 1e6:.2f} MB, int8, FP32 sha256 {report.spec.fp32_sha256[:12]}…)")
    return 0


def _is_int8(path: Path) -> bool:
    """True for a quantised (QDQ) edgecnn file; False for anything else, which check_model then judges."""
    import onnx

    from edgecnn.reference.quant_check import is_quantized

    try:
        return is_quantized(onnx.load(str(path), load_external_data=False))
    except Exception:  # noqa: BLE001  (an unreadable file gets check_model's one-line error)
        return False


def check_command(args: argparse.Namespace) -> int:
    """edgecnn-export --check: print the three-way report; 0 when within tolerance, else 2."""
    from edgecnn.reference.check import check_model, format_report

    if args.source is not None or args.output is not None:
        raise EdgecnnError("--check takes the ONNX file only; give the Keras model with --keras")
    for flag, path in (("--check", args.check), ("--keras", args.keras), ("--images", args.images)):
        if path is not None and not path.exists():
            raise EdgecnnError(f"{flag} {path}: no such file or directory")
    if _is_int8(args.check):
        from edgecnn.reference.quant_check import check_quantized

        if args.keras is not None:
            raise EdgecnnError(
                "--keras: an INT8 model is checked against the C reference only (check its FP32 file against Keras)"
            )
        try:
            int8_report = check_quantized(args.check, images=args.images)
        except ValueError as exc:
            raise EdgecnnError(f"{args.check}: the C reference cannot run it ({exc})") from None
        print(int8_report.format())
        return 0 if int8_report.passed else EXIT_USER_ERROR
    predict = None
    if args.keras is not None:
        import_tensorflow_quietly()
        from edgecnn.training.export import keras_predictor

        predict = keras_predictor(args.keras)
    report = check_model(args.check, predict, images=args.images, tolerance=args.tolerance)
    print(format_report(report))
    return 0 if report.passed else EXIT_USER_ERROR


def export_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.check is not None:
        return check_command(args)
    if args.int8:
        if args.source is None or args.output is None:
            raise EdgecnnError("--int8 needs SOURCE (an exported .onnx) and -o OUTPUT")
        if args.output.suffix != ".onnx":
            raise EdgecnnError(f"-o {args.output}: output must end in .onnx")
        if not args.source.is_file():
            raise EdgecnnError(f"{args.source}: no such file")
        return int8_command(args)
    if args.source is None or args.output is None:
        raise EdgecnnError("give a SOURCE and -o OUTPUT to export, or --check MODEL.onnx to check")
    if not args.source.exists():
        raise EdgecnnError(f"{args.source}: no such file or directory")
    if args.output.suffix != ".onnx":
        raise EdgecnnError(f"-o {args.output}: output must end in .onnx")
    from edgecnn.fileio import check_output_path

    check_output_path(args.output, "-o", inputs=(args.source,))
    class_names = tuple(n.strip() for n in args.class_names.split(",")) if args.class_names else None
    input_size = parse_size(args.input_size) if args.input_size else None
    display_names = parse_display_names(args.display_names) if args.display_names else None
    mean = parse_floats("--mean", args.mean) if args.mean else None
    std = parse_floats("--std", args.std) if args.std else None
    import_tensorflow_quietly()
    from tf2onnx.constants import OPSET_TO_IR_VERSION

    from edgecnn import progress
    from edgecnn.training.export import EXPORT_STEPS, export_model

    if not MIN_OPSET <= args.opset <= max(OPSET_TO_IR_VERSION):
        raise EdgecnnError(
            f"--opset must be in {MIN_OPSET}..{max(OPSET_TO_IR_VERSION)} (what tf2onnx writes), got {args.opset}"
        )
    with progress.steps(EXPORT_STEPS, "export") as begin:
        report = export_model(
            args.source,
            args.output,
            opset=args.opset,
            tolerance=args.tolerance,
            class_names=class_names,
            name=args.name,
            input_size=input_size,
            preprocess=args.preprocess,
            mean=mean,
            std=std,
            channel_order=args.channel_order,
            display_names=display_names,
            on_step=begin,
        )
    print_export_report(report)
    return 0


def print_export_report(report: ExportReport) -> None:
    """What an export wrote and measured, a few lines."""
    spec = report.spec
    print(f"wrote {report.path} ({report.size_bytes / 1e6:.2f} MB, opset {report.opset})")
    print(
        f"  model   {spec.name}: input {spec.height}x{spec.width}x{spec.channels}, {spec.resize} resize, "
        f"{spec.output_activation} over {len(spec.class_names)} classes"
    )
    print(f"  input   {spec.describe_input()}")
    for note in report.extra["notes"]:
        print(f"  note    {note}")
    if report.removed_layers:
        print(f"  removed {', '.join(report.removed_layers)} (inference graph)")
    print("  ops     " + ", ".join(f"{op}x{n}" for op, n in report.op_counts.items()))
    print(
        "  parity  "
        + ", ".join(f"batch {b}: max |keras - onnxruntime| = {d:.2e}" for b, d in report.max_abs_diff.items())
    )
    if "reference" in report.extra:
        print(f"  C ref   {report.extra['reference'].summary()}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of edgecnn-export."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: export_command(argv), FLAGS)


if __name__ == "__main__":
    sys.exit(main())
