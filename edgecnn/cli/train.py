"""edgecnn-train: fit a recipe, or an architecture on your class folders; or build the cats-vs-dogs folder layout."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edgecnn.cli import import_tensorflow_quietly, run_command
from edgecnn.errors import EdgecnnError, first_line
from edgecnn.training.cluster import BACKUP_DIR, BACKUP_STATE_FILE, STRATEGIES, read_tf_config

PROG = "edgecnn-train"
MAX_SEED = 2**32 - 1  # numpy's and TensorFlow's seeds are 32-bit unsigned
PICTURES = ("curves.png", "confusion.png", "predictions.png", "model.png")  # what a run directory shows
# library parameters (EdgecnnError.parameter) -> flags
FLAGS = {
    "data_dir": "--data",
    "limit": "--limit",
    "out_dir": "--out",
    "image_size": "--imgsz",
    "color": "--color",
    "weights": "--weights",
    "split": "--split",
    "class_weight": "--class-weight",
    "augmentation": "--augment",
    "num_classes": "--data",
}
# Written out by hand, as --help must not import TensorFlow; a test holds them to the registry.
RECIPES = "fmnist, catsdogs, catsdogs-xception, catsdogs-xception-s2"
ARCHITECTURES = "convnet, fmnist-cnn, xception, xception-s2, mobilenetv2, mobilenetv3small, efficientnetb0, resnet50"
EPILOG = """examples:
  edgecnn-train convnet --data photos/ --imgsz 128           # your class folders, split 80/10/10 here
  edgecnn-train mobilenetv2 --data photos/ --weights imagenet
  edgecnn-train convnet --data digits/ --imgsz 28 --color gray --epochs 15
  edgecnn-train fmnist --data ../shared/data/fashion-mnist --out runs/fmnist
  edgecnn-train catsdogs --data ../shared/data/cats_vs_dogs --epochs 100 --out runs/catsdogs
  edgecnn-train --list
  edgecnn-train make-subset ~/kaggle/train data/cats_vs_dogs_small

your own photos: DIR is either DIR/CLASS/* (one folder per class, any depth below it;
split here, stratified and seeded, by --split; your files are never moved or copied)
or DIR/train/CLASS/*, DIR/validation/CLASS/* (or val/) and an optional DIR/test/CLASS/*.
Class names are the folder names, sorted; two classes get one sigmoid output, more a
softmax. Files that are not images are skipped and counted. RUN_DIR/split.json lists
the files of every split. --weights imagenet downloads the base's weights (online
only); offline, pass the downloaded file with --weights FILE. Pretrained runs train
the new head on the frozen base for the first half of the epochs, then fine-tune the
base's top quarter at 1/100 the rate; BatchNormalization stays in inference mode.

data checks: before training, every image is decoded once, as edgecnn-infer would; a
corrupt, truncated, oversized or unsupported image stops the run (exit 2) naming every
bad file, since TensorFlow would otherwise fail part way through an epoch. Remove or
repair them.

stopping: Ctrl-C, SIGTERM or SIGHUP stops after the current batch and evaluates the
best checkpoint of this run (exit 0, run.json status "interrupted"); before the first
epoch has finished there is none, so the run ends with exit 130 and no model.
resuming: every epoch backs up the training state in RUN_DIR/backup (weights,
optimizer, schedule position, history, best value, early-stopping count, random
generators); edgecnn-train --resume RUN_DIR continues from the last finished epoch,
here or on another machine, as an unstopped run with the same seed would have.

several GPUs, several machines: --strategy mirrored trains on every GPU of this machine
(auto picks it when there are two or more); --strategy multiworker trains on the
machines listed in TF_CONFIG, the same command on each (docs/distributed.md). --batch-size
is per replica: a step takes batch-size x replicas images, and the learning rate is
the recipe's x sqrt(global batch / recipe batch). Only the chief (worker 0) writes the
run directory; a signal on any worker stops them all within 10 batches; a multi-worker
run that did not finish keeps RUN_DIR/backup, and the same commands resume it.
"""


def image_size(text: str) -> tuple[int, int]:
    """--imgsz: N (square) or HxW."""
    parts = text.lower().split("x")
    if len(parts) in (1, 2) and all(part.isdigit() and int(part) > 0 for part in parts):
        return (int(parts[0]), int(parts[-1]))
    raise argparse.ArgumentTypeError(f"must be N or HxW in pixels, got {text!r}")


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=f"Train a recipe ({RECIPES}) or an architecture ({ARCHITECTURES}) on your class folders, and "
        "write a run directory (best model.keras, its summary and diagram, history, metrics with per-class "
        "accuracy, plots, class names, the split, command and versions). `edgecnn-train --list` shows input "
        "sizes and weights; `edgecnn-train make-subset -h` builds the cats-vs-dogs folders from Kaggle's flat folder.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", help=f"a recipe ({RECIPES}) or an architecture ({ARCHITECTURES})")
    parser.add_argument(
        "--list", action="store_true", help="list every architecture and recipe: input size, colours, weights"
    )
    group = parser.add_argument_group("data and output")
    group.add_argument(
        "--data",
        type=Path,
        default=None,
        help="the data folder: class folders, or train/ validation/ [test/] holding them; Fashion-MNIST's IDX "
        "files for fmnist (default: download with keras.datasets, where the recipe supports it)",
    )
    group.add_argument(
        "--split",
        default=None,
        help="train,validation,test shares for class folders without train/ (default: 0.8,0.1,0.1)",
    )
    group.add_argument("--out", type=Path, default=None, help="run directory (default: runs/MODEL)")
    group.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue the stopped run in RUN_DIR after its last finished epoch, with its own command "
        "(give --data too when the data has moved; or give the whole command, which must match the run's)",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse a run directory that already holds a model: once the data has loaded, the "
        "previous run's model, metrics, plots and samples are deleted before training starts",
    )
    group = parser.add_argument_group("model (architectures only; a recipe fixes these)")
    group.add_argument(
        "--imgsz", type=image_size, default=None, metavar="N|HxW", help="input size (default: the architecture's)"
    )
    group.add_argument(
        "--color", choices=("rgb", "gray"), default=None, help="input colour (default: gray when every image is)"
    )
    group.add_argument(
        "--weights",
        default="none",
        metavar="imagenet|none|FILE",
        help="the base's starting weights: ImageNet's (downloaded), none (from scratch), or a weights file "
        "of that base (default: %(default)s)",
    )
    group.add_argument(
        "--augment",
        choices=("none", "tutorial", "strong"),
        default=None,
        help="tutorial: random flip, rotation and zoom; strong: also shifts, contrast, brightness and "
        "erased rectangles (default: tutorial for rgb, none for gray)",
    )
    group = parser.add_argument_group("training")
    group.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs (default: the recipe's: 20 fmnist, 100 catsdogs, 70 catsdogs-xception, 160 catsdogs-xception-s2; "
        "20 for an architecture, 50 for xception)",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per replica per step; the global batch is this x replicas (default: the recipe's, 32)",
    )
    group.add_argument(
        "--class-weight",
        choices=("none", "balanced"),
        default="none",
        help="balanced: weigh each class by total / (classes x its images) (default: %(default)s)",
    )
    group.add_argument("--limit", type=int, default=None, help="train on only N images per epoch (a quick smoke run)")
    group.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="default: one device; mirrored: every GPU here (without GPUs, every logical CPU device); "
        "multiworker: the workers in TF_CONFIG; auto: mirrored with two or more GPUs, else default "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=42,
        help=f"seed for the split, shuffling and weights, 0..{MAX_SEED} (default: %(default)s)",
    )
    return parser


def subset_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} make-subset",
        description="Copy cat.N.jpg / dog.N.jpg from a flat folder into DST/{train,validation,test}/{cats,dogs}/ "
        "using consecutive index ranges per class. Copies, never moves, never overwrites.",
    )
    parser.add_argument("src", type=Path, help="flat folder with cat.N.jpg and dog.N.jpg (Kaggle's train/)")
    parser.add_argument("dst", type=Path, help="destination folder")
    for split, size in (("train", 1000), ("validation", 500), ("test", 1000)):
        parser.add_argument(
            f"--{split}", type=int, default=size, help=f"images per class in {split}/ (default: %(default)s)"
        )
    return parser


def make_subset_command(argv: list[str]) -> int:
    args = subset_parser().parse_args(argv)
    from edgecnn.training.data import KAGGLE_CLASSES, make_subset

    sizes = {"train": args.train, "validation": args.validation, "test": args.test}
    if min(sizes.values()) < 0:
        raise EdgecnnError(f"split sizes must not be negative, got {sizes}")
    from edgecnn import progress

    with progress.bar(len(KAGGLE_CLASSES) * sum(sizes.values()), "copying", unit="file") as copying:
        report = make_subset(args.src, args.dst, sizes, advance=copying.update)
    print(f"copied {report['copied']} images into {args.dst}")
    if report["skipped_existing"]:
        print(
            f"skipped {len(report['skipped_existing'])} already present (not overwritten), "
            f"e.g. {report['skipped_existing'][0]}"
        )
    if report["missing"]:
        print(f"missing from {args.src}: {len(report['missing'])} files, e.g. {report['missing'][0]}")
    return 0


def train_command(argv: list[str]) -> int:
    args = train_parser().parse_args(argv)
    if args.list:
        import_tensorflow_quietly()
        from edgecnn.training import registry

        print("\n".join(registry.listing()))
        return 0
    if args.resume is not None:
        args, argv = resumed_command(args, argv)
    if args.model is None:
        raise EdgecnnError("give a recipe or an architecture to train (edgecnn-train --list shows them)")
    out = args.out or Path("runs") / args.model
    if args.data is not None and not args.data.exists():
        raise EdgecnnError(f"--data {args.data}: no such directory")
    if args.data is not None and not args.data.is_dir():
        raise EdgecnnError(f"--data {args.data}: not a directory")
    if not 0 <= args.seed <= MAX_SEED:
        raise EdgecnnError(f"--seed must be in 0..{MAX_SEED}, got {args.seed}")
    task = read_tf_config(os.environ.get("TF_CONFIG")) if args.strategy == "multiworker" else None
    if task is None or task.is_chief:  # other workers write nothing there
        if out.exists() and not out.is_dir():
            raise EdgecnnError(f"--out {out}: exists and is not a directory")
        resumable = task is not None and (out / BACKUP_DIR).is_dir()
        resumable = resumable or args.resume is not None
        if (out / "model.keras").exists() and not args.overwrite and not resumable:
            raise EdgecnnError(f"{out} already holds a trained model; pass --overwrite or choose another --out")
    import_tensorflow_quietly()
    try:
        metrics = train_with_args(args, argv, out)
    except EdgecnnError as exc:
        if exc.parameter == "weights" and exc.reason.startswith("cannot fetch"):  # offline: which flag takes the file
            raise EdgecnnError(f"{exc.reason}, with --weights FILE", parameter="weights") from None
        raise
    report(args, metrics, out)
    return 0


def resumed_command(args: argparse.Namespace, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The arguments that resume RUN_DIR (--resume): the stopped run's own command (with this --data, if
    given), or this command when it names the model; and the command line to record."""
    run_dir = args.resume
    if args.overwrite:
        raise EdgecnnError("--resume and --overwrite contradict each other: choose one")
    if args.out is not None and args.out.resolve() != run_dir.resolve():
        raise EdgecnnError(f"--resume {run_dir} continues that run directory; leave out --out {args.out}")
    if not (run_dir / "run.json").is_file():
        raise EdgecnnError(f"--resume {run_dir}: not a run directory (no run.json)")
    if not (run_dir / BACKUP_DIR / BACKUP_STATE_FILE).is_file():
        raise EdgecnnError(
            f"--resume {run_dir}: no backup to resume from (its run finished, or stopped before its first epoch ended)"
        )
    if args.model is not None:
        resumed, command = args, argv
    else:
        import json

        try:
            run_info = json.loads((run_dir / "run.json").read_text())
            command = [str(part) for part in run_info["command"][1:]]
            recorded_cwd = Path(run_info["cwd"])
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise EdgecnnError(
                f"--resume {run_dir}: its run.json is damaged ({first_line(exc)}); give the run's whole command "
                "with --resume"
            ) from None
        resumed = train_parser().parse_args(command)
        if args.data is not None:
            resumed.data = args.data
        elif resumed.data is not None and not resumed.data.is_absolute():
            resumed.data = recorded_cwd / resumed.data  # the command ran there
    resumed.out, resumed.resume = run_dir, run_dir
    return resumed, command


def train_with_args(args: argparse.Namespace, argv: list[str], out: Path) -> dict:
    """edgecnn.training.train with the parsed command line."""
    from edgecnn.training.data import parse_split
    from edgecnn.training.fit import train

    return train(
        args.model,
        args.data,
        out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        limit=args.limit,
        argv=[PROG, *argv],
        strategy=args.strategy,
        resume=True if args.resume is not None else (False if args.overwrite else None),
        image_size=args.imgsz,
        color=args.color,
        weights=None if args.weights == "none" else args.weights,
        split=None if args.split is None else parse_split(args.split),
        class_weight=None if args.class_weight == "none" else args.class_weight,
        augmentation=args.augment,
    )


def report(args: argparse.Namespace, metrics: dict, out: Path) -> None:
    """What the run measured and where it wrote it."""
    print()
    if not metrics.get("chief", True):
        print(
            f"{metrics['task']}: {metrics['epochs_run']} epochs in {metrics['fit_seconds']:.0f} s"
            f"{' (interrupted)' if metrics['interrupted'] else ''}; the chief wrote the run directory"
        )
        return
    shown = metrics["evaluated_split"]
    print(
        f"{args.model}: {metrics['epochs_run']} epochs in {metrics['fit_seconds']:.0f} s, "
        f"best epoch {metrics['best_epoch']}{' (interrupted)' if metrics['interrupted'] else ''}: "
        f"{shown} accuracy {metrics[shown]['accuracy']:.4f}, loss {metrics[shown]['loss']:.4f}"
    )
    for split in ("train", "validation", "test"):
        if split in metrics:
            print(f"  {split:<10} loss {metrics[split]['loss']:.4f}  accuracy {metrics[split]['accuracy']:.4f}")
    worst = sorted((value, name) for name, value in metrics["per_class_accuracy"].items() if value is not None)[:3]
    print(f"  lowest {shown} accuracy per class: {', '.join(f'{name} {value:.3f}' for value, name in worst)}")
    pictures = [name for name in PICTURES if (out / name).exists()]
    print(f"pictures: {', '.join(str(out / name) for name in pictures)}")
    print(f"summary:  {out / 'model.txt'} (layers, shapes, parameters, multiply-accumulates)")
    print(f"run directory: {out}  (export with: edgecnn-export {out} -o {out}/model.onnx)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of edgecnn-train."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "make-subset":
        return run_command(PROG, lambda: make_subset_command(argv[1:]))
    return run_command(PROG, lambda: train_command(argv), FLAGS)


if __name__ == "__main__":
    sys.exit(main())
