"""edgecnn-bench: latency, throughput, accuracy and INT8 agreement of edgecnn models in one table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgecnn.cli import run_command
from edgecnn.errors import EdgecnnError
from edgecnn.models import BUNDLED

PROG = "edgecnn-bench"
EPILOG = """examples:
  edgecnn-bench catsdogs catsdogs-int8
  edgecnn-bench fmnist fmnist-int8 --threads 1,2 --batch 1,32
  edgecnn-bench my_model.onnx --images photos/test --device cpu,cuda --json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Time edgecnn models (preprocessing + onnxruntime run on a batch of decoded real images) for every "
        "provider x threads x batch: median and p95 latency, images/s; plus accuracy on the labelled images and, "
        "for an INT8 model, top-1 agreement with the FP32 model it was quantised from. Prints the machine's load.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help=f"bundled model names ({', '.join(BUNDLED)}) or .onnx files",
    )
    group = parser.add_argument_group("what to measure")
    group.add_argument(
        "--images",
        type=Path,
        default=None,
        metavar="DIR",
        help="images: one folder per class (labelled), Fashion-MNIST IDX files, or any images "
        "(default: each model's test data, when known and found)",
    )
    group.add_argument("--limit", type=int, default=1000, help="labelled images for accuracy (default: %(default)s)")
    group.add_argument("--threads", default="1", help="comma-separated intra-op thread counts (default: %(default)s)")
    group.add_argument("--batch", default="1", help="comma-separated batch sizes (default: %(default)s)")
    group.add_argument("--device", default="cpu", help="comma-separated devices: cpu, cuda (default: %(default)s)")
    timing = parser.add_argument_group("timing")
    timing.add_argument("--warmup", type=int, default=10, help="untimed runs first (default: %(default)s)")
    timing.add_argument("--runs", type=int, default=20, help="at least this many timed runs (default: %(default)s)")
    timing.add_argument(
        "--seconds", type=float, default=1.0, help="and at least this long per configuration (default: %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return parser


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def bench_command(argv: list[str]) -> int:
    from edgecnn.benchmark import cpu_features, machine_load, parse_int_list, run_bench
    from edgecnn.models import resolve_model
    from edgecnn.session import DEVICES

    args = build_parser().parse_args(argv)
    threads = parse_int_list(args.threads, "--threads")
    batches = parse_int_list(args.batch, "--batch")
    devices = [d.strip() for d in args.device.split(",") if d.strip()]
    bad = [d for d in devices if d not in DEVICES]
    if bad or not devices:
        raise EdgecnnError(f"--device must be comma-separated {', '.join(DEVICES)}, got {args.device!r}")
    for flag, value in (("--limit", args.limit), ("--runs", args.runs)):
        if value < 1:
            raise EdgecnnError(f"{flag} must be >= 1, got {value}")
    if args.warmup < 0 or args.seconds < 0:
        raise EdgecnnError(f"--warmup and --seconds must be >= 0, got {args.warmup} and {args.seconds}")
    if args.images is not None and not args.images.exists():
        raise EdgecnnError(f"--images {args.images}: no such file or directory")
    paths = [resolve_model(m) for m in args.models]
    for text, path in zip(args.models, paths, strict=True):
        if not path.is_file():
            raise EdgecnnError(f"{text}: no such model file")
    load = machine_load()
    if not args.json:
        print(f"{PROG}: {cpu_features()}; {load}")
    rows = run_bench(
        paths,
        args.images,
        threads,
        batches,
        devices,
        args.limit,
        args.warmup,
        args.runs,
        args.seconds,
        names=args.models,
    )
    if args.json:
        print(json.dumps({"load": load, "rows": [r.as_dict() for r in rows]}, indent=1))
        return 0
    header = (
        "model",
        "precision",
        "provider",
        "threads",
        "batch",
        "median ms",
        "p95 ms",
        "images/s",
        "runs",
        "accuracy",
        "agreement",
    )
    cells = [
        [
            r.model,
            r.precision,
            r.provider.replace("ExecutionProvider", ""),
            str(r.threads),
            str(r.batch),
            f"{r.median_ms:.3f}",
            f"{r.p95_ms:.3f}",
            f"{r.images_per_s:.1f}",
            str(r.runs),
            _cell(r.accuracy, ".4f"),
            _cell(r.agreement, ".4f"),
        ]
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [list(header), *cells]) for i in range(len(header))]
    for n, row in enumerate([list(header), *cells]):
        print("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(f"load at the end: {machine_load()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of edgecnn-bench."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: bench_command(argv), {"device": "--device"})


if __name__ == "__main__":
    sys.exit(main())
