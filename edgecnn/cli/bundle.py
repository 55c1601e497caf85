"""python -m edgecnn.cli.bundle: regenerate the bundled models and their recipes (edgecnn.training.bundle)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecnn.cli import import_tensorflow_quietly, run_command
from edgecnn.errors import EdgecnnError
from edgecnn.models import BUNDLED, INT8_SUFFIX

PROG = "python -m edgecnn.cli.bundle"
EPILOG = """examples:
  python -m edgecnn.cli.bundle --runs runs catsdogs fmnist
  python -m edgecnn.cli.bundle fmnist-int8 catsdogs-int8
  python -m edgecnn.cli.bundle --spec-only
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export each finished run (NAME) or quantise a bundled FP32 model (NAME-int8) into the "
        "edgecnn.models package, and write NAME.recipe.json beside it: commands, data checksums, seed, versions, "
        "metrics and SHA-256s. NAME needs the [train] extra.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"models to bundle: {', '.join(BUNDLED)} (default: all)"
    )
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="folder of run directories (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "models",
        help="where NAME.onnx and NAME.recipe.json go (default: the edgecnn.models package)",
    )
    parser.add_argument(
        "--allow-unfinished",
        action="store_true",
        help="bundle the best checkpoint of a run still training (the recipe says status: training)",
    )
    parser.add_argument(
        "--spec-only",
        action="store_true",
        help="rewrite only the ModelSpec metadata of the bundled files (display names from the registry) "
        "and their recipes' hashes; the graphs stay as they are",
    )
    return parser


def bundle_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    unknown = sorted(set(args.names) - set(BUNDLED))
    if unknown:
        raise EdgecnnError(f"unknown model(s) {', '.join(unknown)}; bundled models: {', '.join(BUNDLED)}")
    names = list(dict.fromkeys(args.names or BUNDLED))
    if args.spec_only:
        from edgecnn.training.bundle import update_spec

        names += [f"{name}{INT8_SUFFIX}" for name in names if f"{name}{INT8_SUFFIX}" in BUNDLED]  # hash their FP32
        for name in sorted(dict.fromkeys(names), key=lambda n: n.endswith(INT8_SUFFIX)):
            recipe = update_spec(name, args.out)
            print(f"updated the spec of {args.out / name}.onnx (sha256 {recipe['onnx']['sha256'][:12]})")
        return 0
    if any(not name.endswith(INT8_SUFFIX) for name in names):
        import_tensorflow_quietly()
    from edgecnn.cli.export import print_export_report
    from edgecnn.training.bundle import bundle_fp32, bundle_int8

    for name in names:
        recipe_path = args.out / f"{name}.recipe.json"
        if name.endswith(INT8_SUFFIX):
            recipe = bundle_int8(name, args.out)
            gate = recipe["gate"]
            print(
                f"wrote {args.out / f'{name}.onnx'} and {recipe_path} (INT8 accuracy {gate['int8_accuracy']:.4f}, "
                f"FP32 {gate['fp32_accuracy']:.4f})"
            )
            continue
        report, recipe = bundle_fp32(name, args.runs / name, args.out, args.allow_unfinished)
        print_export_report(report)
        metrics = recipe["metrics"]
        print(
            f"wrote {recipe_path} (status {recipe['status']}, metrics "
            f"{'test ' + format(metrics['test']['accuracy'], '.4f') if metrics else 'none yet'})"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m edgecnn.cli.bundle`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: bundle_command(argv))


if __name__ == "__main__":
    sys.exit(main())
