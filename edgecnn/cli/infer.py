"""edgecnn-infer: classify images (files, directories) or live video (camera, file, stream)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.cli import EXIT_INTERRUPTED, printable, run_command
from edgecnn.errors import UserError
from edgecnn.labels import pad_left
from edgecnn.models import BUNDLED, DEFAULT_MODEL
from edgecnn.plot import MAX_CHART_IMAGES
from edgecnn.session import GRAPH_OPT_LEVELS
from edgecnn.sinks import VIDEO_CODECS
from edgecnn.spec import LANGUAGE_TAG

EXIT_SOURCE_FAILED = 1
MAX_THREADS = 4 * (os.cpu_count() or 1)  # --threads and --workers: beyond this onnxruntime only thrashes, or fails
VIDEO_ONLY_OPTIONS = ("realtime", "max_frames", "duration", "show", "save", "workers")

PROG = "edgecnn-infer"
EPILOG = """how the arguments are read:
  Without --model, the first positional argument is the model file unless it is a
  directory or an image (.png, .jpg, ...); the other positionals are images or
  directories. With --model, every positional is an image or directory. No model given
  at all: the bundled cats-vs-dogs model. With --camera SOURCE there are no images.

examples:
  edgecnn-infer fmnist.onnx shirt.png shoes/
  edgecnn-infer --model fmnist shirt.png --json
  edgecnn-infer --camera 0 --show                    # webcam, bundled catsdogs model
  edgecnn-infer --camera clip.mp4 --json > out.jsonl # every frame, in order, as fast as possible
  edgecnn-infer --camera clip.mp4 --realtime --show  # play at the file's FPS like a camera
  edgecnn-infer --camera rtsp://cam.local/stream --save annotated.mp4 --duration 60
  edgecnn-infer catsdogs.onnx photos/ --device cuda
  edgecnn-infer --model fmnist --lang ko --plot chart.png samples/   # Korean class names, bar charts

languages (--lang):
  A model may carry its class names in other languages (the bundled ones: ko). --lang
  picks one for the table, the charts and the video overlay; --json keeps "label" and
  adds "display_label". Without --lang the locale (LC_ALL, LC_MESSAGES, LANG) picks it
  when the model has that language. Drawn text needs a font with its glyphs (Hangul:
  fonts-nanum or fonts-noto-cjk; EDGECNN_FONT=FILE chooses one); without one the
  model's own class names are drawn, and edgecnn-infer says so.

sources (--camera):
  An integer is a camera index (as cv2.VideoCapture(0)), /dev/... a camera device,
  scheme://... a stream (rtsp, http, udp, ...), anything else a video file. Cameras,
  streams and --realtime files keep only the newest frame: when inference is slower
  than the source, stale frames are dropped (counted in the summary) so results never
  lag further and further behind. Video files are otherwise read in order, every frame,
  split over --workers sessions in batches of --batch-size frames.
  Ctrl-C, SIGTERM or SIGHUP (or q/Esc in the --show window) stops cleanly and prints
  the summary; --save keeps what was recorded until then.

summary (stderr; with --json also the last stdout line, {"summary": {...}}):
  frames, FPS, dropped and unreadable frames, milliseconds per frame for capture
  (decode, and for a camera the wait for the sensor), preprocess, inference,
  postprocess and output, frame age at result (capture -> result) p50/p95/max, and the
  execution provider that really ran.

exit status: 0 all images classified / the video ran to its end or limit; 1 the video
source failed part way (stream dropped, file truncated); 2 a usage error, a source that
cannot be opened, or any image that could not be read (bad images in a directory are
reported on stderr and skipped; the rest are classified); 130 interrupted (Ctrl-C,
SIGTERM, SIGHUP); 141 stdout was closed by its reader (e.g. `| head`).

limits: images are refused, before decoding, when their header declares more than
67,108,864 pixels or the file is larger than 256 MiB; formats read: JPEG, PNG, BMP,
TIFF, WebP, GIF, PBM/PGM/PPM. --threads and --workers go up to 4 x the CPU count.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage="%(prog)s [MODEL.onnx] [IMAGE_OR_DIR ...] [--model NAME_OR_PATH] [--camera SOURCE] [options]",
        description="Classify images, or live video from a camera, video file or stream, with an ONNX model "
        "exported by edgecnn-export. Preprocessing (size, colour, scaling) follows the ModelSpec stored in "
        "the model file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="[MODEL.onnx] IMAGE_OR_DIR",
        help="model file (first, unless --model is given or it is an image or directory), "
        "then image files and/or directories (searched recursively)",
    )
    group = parser.add_argument_group("model and source")
    group.add_argument(
        "--model",
        default=None,
        metavar="NAME_OR_PATH",
        help=f"bundled model ({', '.join(BUNDLED)}) or an .onnx file "
        f"(default: {DEFAULT_MODEL} when no MODEL.onnx is given)",
    )
    group.add_argument(
        "--camera",
        default=None,
        metavar="SOURCE",
        help="camera index (0), device (/dev/video0), video file or stream URL",
    )
    group.add_argument(
        "--realtime",
        action="store_true",
        help="play a video file at its native FPS and drop stale frames, like a live camera",
    )
    group.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    group.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after SECONDS")
    group.add_argument(
        "--source-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="give up on a camera or stream that sends no frame for this long (default: %(default)s)",
    )
    group = parser.add_argument_group("output")
    group.add_argument("--top-k", type=int, default=3, help="labels to show per image or frame (default: %(default)s)")
    group.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line instead of a table (video: then a final summary object)",
    )
    group.add_argument(
        "--show",
        action="store_true",
        help="video: show the frames with label, probability and FPS in a window "
        "(without a display: say so and go on headless)",
    )
    group.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="OUT.mp4",
        help=f"video: write the annotated frames ({', '.join(VIDEO_CODECS)}; appears only when complete "
        "and verified; never the input video itself)",
    )
    group.add_argument(
        "--lang",
        default=None,
        metavar="TAG",
        help="class names in this language when the model has them, e.g. ko (default: the locale's, when the "
        "model has it; else the model's own names)",
    )
    group.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="OUT.png",
        help=f"images: draw each image beside a bar chart of its top-k classes, the true class marked when the "
        f"folder or sample file name gives it (the first {MAX_CHART_IMAGES} images; .png, .svg or .pdf; "
        "needs matplotlib: pip install 'edgecnn[plot]')",
    )
    group = parser.add_argument_group("runtime")
    group.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="execution provider: auto uses CUDA when it really starts (default: %(default)s)",
    )
    group.add_argument(
        "--require-cuda",
        action="store_true",
        help="fail (exit 2) unless the CUDA execution provider really runs (same as --device cuda)",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="frames per inference call: images 32; video files 4 on CPU, 16 on CUDA; "
        "always 1 for live sources (latency)",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        help="video: parallel inference sessions: video files one per CPU (max 8) on CPU, else 1; live sources 1",
    )
    group.add_argument(
        "--threads",
        type=int,
        default=None,
        help="onnxruntime intra-op threads per session (default: 1 per worker for video files, "
        "all CPUs for live sources and images)",
    )
    group.add_argument(
        "--graph-opt",
        choices=GRAPH_OPT_LEVELS,
        default="all",
        help="onnxruntime graph optimisation level (default: %(default)s)",
    )
    return parser


def format_row(source: str, predictions: list[tuple[str, float]], width: int) -> str:
    cells = "  ".join(f"{pad_left(label, 12)} {p:7.4f}" for label, p in predictions)
    return f"{printable(source):<{width}}  {cells}"


def split_model_and_inputs(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """(model given on the command line or None, image inputs).

    Without --model, the first positional is the model unless it is a directory or has
    an image suffix (so `edgecnn-infer model.onnx photos/` works as it always did).
    """
    from edgecnn.sources import IMAGE_SUFFIXES

    inputs = list(args.inputs)
    if args.model is not None or not inputs:
        return args.model, inputs
    first = Path(inputs[0])
    if first.is_dir() or first.suffix.lower() in IMAGE_SUFFIXES:
        return None, inputs
    return inputs[0], inputs[1:]


def check_args(args: argparse.Namespace, inputs: list[str]) -> None:
    """Usage errors that argparse cannot see, each one line."""
    for name in ("top_k", "batch_size", "workers", "threads", "max_frames"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "threads" else 1):
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} must be {'>= 0' if name == 'threads' else 'positive'}, got {value}")
    for name in ("threads", "workers"):
        value = getattr(args, name)
        if value is not None and value > MAX_THREADS:
            raise UserError(f"--{name} must be at most {MAX_THREADS} (4 x {os.cpu_count()} CPUs), got {value}")
    if args.duration is not None and not args.duration > 0:
        raise UserError(f"--duration must be positive, got {args.duration}")
    if not args.source_timeout > 0:
        raise UserError(f"--source-timeout must be positive, got {args.source_timeout}")
    if args.require_cuda:
        if args.device == "cpu":
            raise UserError("--require-cuda contradicts --device cpu")
        args.device = "cuda"
    if args.lang is not None:
        args.lang = args.lang.replace("_", "-")  # ko_KR as locales write it
        if not LANGUAGE_TAG.fullmatch(args.lang):
            raise UserError(f"--lang must be a language tag such as ko or pt-BR, got {args.lang!r}")
    if args.plot is not None:
        from edgecnn.fileio import check_output_path
        from edgecnn.plot import check_chart_path, matplotlib_problem

        if args.camera is not None:
            raise UserError("--plot charts images; for video use --show or --save")
        try:
            check_chart_path(args.plot)
        except UserError as exc:
            raise UserError(f"--plot {exc}") from None
        check_output_path(args.plot, "--plot", inputs=tuple(inputs))
        if problem := matplotlib_problem():
            raise UserError(f"--plot: {problem}")
    if args.camera is not None:
        if inputs:
            raise UserError(f"--camera reads video; image arguments are not allowed with it (got {inputs[0]})")
        if args.save is not None:
            from edgecnn.fileio import check_output_path
            from edgecnn.sinks import check_video_suffix

            check_video_suffix(args.save)
            check_output_path(args.save, "--save", inputs=(args.camera,))
        return
    used = [o for o in VIDEO_ONLY_OPTIONS if getattr(args, o) not in (None, False)]
    if used:
        raise UserError(f"--{used[0].replace('_', '-')} applies to video only (use it with --camera SOURCE)")
    if not inputs:
        raise UserError("nothing to classify: give IMAGE_OR_DIR... or --camera SOURCE (see --help)")


def infer_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    model, inputs = split_model_and_inputs(args)
    check_args(args, inputs)
    from edgecnn.models import resolve_model

    model_path = resolve_model(model)
    if args.camera is not None:
        return video_command(args, model_path)
    return images_command(args, model_path, inputs)


def describe(classifier) -> str:
    spec = classifier.spec
    return (
        f"{spec.name} ({len(spec.class_names)} classes, {spec.height}x{spec.width} {spec.color}) "
        f"on {classifier.provider}"
    )


def images_command(args: argparse.Namespace, model_path: Path, inputs: list[str]) -> int:
    from edgecnn import progress
    from edgecnn.postprocess import top_k
    from edgecnn.session import Classifier
    from edgecnn.sources import expand_image_paths, iter_images

    batch_size = args.batch_size or 32
    paths = expand_image_paths(inputs)
    classifier = Classifier(model_path, device=args.device, threads=args.threads or 0, graph_opt=args.graph_opt)
    spec = classifier.spec
    print(f"{PROG}: {describe(classifier)}", file=sys.stderr)
    shown = class_names_shown(spec, args.lang)
    charted: list = []  # (path, frame, probabilities) of the first MAX_CHART_IMAGES images, for --plot
    width = min(60, max(len(str(p)) for p in paths))
    header = f"{'image':<{width}}  " + "  ".join(
        f"{'top-' + str(i + 1):>12} {'prob':>7}" for i in range(min(args.top_k, len(spec.class_names)))
    )
    failed = classified = 0
    started = time.perf_counter()
    batch_paths, batch_frames = [], []
    bar = progress.bar(len(paths), "classifying", unit="image", enabled=not args.json)

    def flush() -> None:
        nonlocal classified
        if not batch_frames:
            return
        if classified == 0 and not args.json:
            progress.write(header)
        probabilities = classifier.classify(batch_frames)
        for path, predictions in zip(batch_paths, top_k(probabilities, spec.class_names, args.top_k), strict=True):
            if args.json:
                record = {"source": str(path), "predictions": prediction_records(predictions, shown)}
                print(json_line(record))
            else:
                progress.write(format_row(str(path), [(shown[label], p) for label, p in predictions], width))
        if args.plot is not None:
            charted.extend(zip(batch_paths, batch_frames, probabilities, strict=True))
            del charted[MAX_CHART_IMAGES:]
        classified += len(batch_frames)
        bar.update(len(batch_frames))
        batch_paths.clear()
        batch_frames.clear()

    with bar:
        for path, frame, error in iter_images(paths):
            if error is not None:
                progress.write(f"{PROG}: skipped {printable(error)}", file=sys.stderr)
                failed += 1
                bar.update(1)
                continue
            batch_paths.append(path)
            batch_frames.append(frame)
            if len(batch_frames) == batch_size:
                flush()
        flush()
    elapsed = time.perf_counter() - started
    rate = classified / elapsed if elapsed > 0 else 0.0
    print(
        f"{PROG}: classified {classified} image(s), {failed} failed, in {elapsed:.2f} s ({rate:.0f} images/s) "
        f"on {classifier.provider}",
        file=sys.stderr,
    )
    if args.plot is not None and charted:
        write_chart(args.plot, charted, spec, shown, args.top_k, classified)
    return 2 if failed else 0


def class_names_shown(spec, language: str | None) -> dict[str, str]:
    """Canonical class name -> the name shown (table, charts, overlay) in --lang or the locale's language."""
    from edgecnn.labels import choose_language, display_map

    chosen, note = choose_language(spec, language)
    if note:
        print(f"{PROG}: {note}", file=sys.stderr)
    return display_map(spec, chosen)


def overlay_painter(shown: dict[str, str]) -> tuple[dict[str, str], Any]:
    """(canonical name -> name drawn, TextPainter) for --show/--save: the shown names when a font can draw them."""
    from edgecnn.text import TextPainter, drawable_labels

    drawn, font, note = drawable_labels(shown)
    if note:
        print(f"{PROG}: {note}", file=sys.stderr)
    return drawn, TextPainter(font)


def write_chart(path: Path, charted: list, spec, shown: dict[str, str], k: int, total: int) -> None:
    """--plot: the charted images beside their top-k bars, in the shown names when a font can draw them."""
    from edgecnn.labels import true_class
    from edgecnn.plot import ChartImage, save_chart
    from edgecnn.text import drawable_labels

    drawn, font, note = drawable_labels(shown, extra="")
    if note:
        print(f"{PROG}: {note}", file=sys.stderr)
    labels = [drawn[name] for name in spec.class_names]
    images = [
        ChartImage(frame, path.name, probabilities, true_class(path, spec.class_names))
        for path, frame, probabilities in charted
    ]
    save_chart(path, images, labels, k, font)
    k = min(k, len(labels))
    more = f" (the first {len(images)} of {total})" if total > len(images) else ""
    print(
        f"{PROG}: wrote {printable(str(path))}: {len(images)} image(s) with their top-{k} classes{more}",
        file=sys.stderr,
    )


def json_line(record: Any) -> str:
    """One line of strict JSON: NaN and infinities (a model can output them) become null."""

    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: finite(v) for key, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(record), allow_nan=False)


def prediction_records(predictions: list[tuple[str, float]], shown: dict[str, str] | None = None) -> list[dict]:
    """JSON records of (label, probability); with a translation in `shown` each also gets "display_label"."""
    records = [{"label": label, "probability": round(p, 6)} for label, p in predictions]
    if shown and any(shown[label] != label for label in shown):
        for record in records:
            record["display_label"] = shown[record["label"]]
    return records


def video_plan(args: argparse.Namespace, live: bool, provider: str) -> tuple[int, int, int]:
    """(workers, threads per session, batch size) for this source and provider.

    Live sources: one session using every CPU on one frame at a time (lowest latency).
    Files on CPU: one single-threaded session per CPU, in small batches (best throughput:
    sessions run in parallel while the capture thread decodes). On CUDA: one session,
    larger batches.
    """
    from edgecnn.live import cpu_count

    cpus = cpu_count()
    cuda = provider == "CUDAExecutionProvider"
    if live:
        workers, threads, batch = 1, cpus, 1
    elif cuda:
        workers, threads, batch = 1, cpus, 16
    else:
        workers, threads, batch = min(cpus, 8), 1, 4
    if args.workers is not None:
        workers = args.workers
        if args.threads is None and not live and not cuda:
            threads = max(1, cpus // workers)
    if args.threads is not None:
        threads = args.threads
    if args.batch_size is not None and not live:
        batch = args.batch_size
    return workers, threads, batch


def video_command(args: argparse.Namespace, model_path: Path) -> int:
    from edgecnn.live import FrameReader, run_live
    from edgecnn.session import Classifier
    from edgecnn.sinks import Window, annotate, display_problem, record_video
    from edgecnn.sources import open_video

    with contextlib.ExitStack() as stack:
        cap, info = open_video(args.camera, timeout_s=args.source_timeout)
        stack.callback(cap.release)
        live = info.live or args.realtime
        if args.realtime and info.live:
            print(f"{PROG}: --realtime has no effect on a {info.kind}: it is live already", file=sys.stderr)
        if args.realtime and info.fps <= 0:
            raise UserError(f"{info.name}: --realtime needs the video's frame rate, which it does not state")
        if args.batch_size is not None and args.batch_size > 1 and live:
            print(
                f"{PROG}: --batch-size ignored: a live source is classified one newest frame at a time", file=sys.stderr
            )
        first = Classifier(model_path, device=args.device, threads=1, graph_opt=args.graph_opt)
        workers, threads, batch = video_plan(args, live, first.provider)
        classifiers = [first] if threads == 1 else []  # the probe session serves when it fits the plan
        classifiers += [
            Classifier(model_path, device=args.device, threads=threads, graph_opt=args.graph_opt)
            for _ in range(workers - len(classifiers))
        ]
        del first  # when unused, its session is freed now
        spec = classifiers[0].spec
        shown = class_names_shown(spec, args.lang)
        warm = np.zeros((info.height or 480, info.width or 640, 3), np.uint8)
        for classifier in classifiers:
            classifier.classify([warm] * batch)  # first-run allocations stay out of the timings
        window = writer = None
        drawn, painter = overlay_painter(shown) if args.show or args.save is not None else (shown, None)
        if args.show:
            problem = display_problem()
            if problem is None:
                window = Window(f"{PROG}: {info.name}")
                stack.callback(window.close)
            else:
                print(f"{PROG}: cannot show video: {problem}; continuing headless", file=sys.stderr)
        if args.save is not None:
            # Commits on leaving this block, also when a signal ended the run (what was recorded is
            # kept); an exception (a failed write, a model error) leaves no file.
            writer = stack.enter_context(record_video(args.save, info.fps))
        rate = f"{info.fps:g} FPS" if info.fps else "unknown FPS"
        print(
            f"{PROG}: {describe(classifiers[0])}; {info.kind} {printable(info.name)} {info.width}x{info.height} "
            f"at {rate} ({'newest frame only' if live else 'every frame in order'}; {workers} worker(s) x "
            f"{threads} thread(s), batch {batch})",
            file=sys.stderr,
        )

        k = min(args.top_k, len(spec.class_names))
        header = (
            f"{'frame':>7} {'time':>9}  "
            + "  ".join(f"{'top-' + str(i + 1):>12} {'prob':>7}" for i in range(k))
            + f"  {'age ms':>7}"
        )
        wall_offset = time.time() - time.perf_counter()
        printed = False

        def on_result(result) -> bool:
            nonlocal printed
            frame = result.frame
            if args.json:
                print(
                    json_line(
                        {
                            "source": info.name,
                            "frame": frame.index,
                            "time": round(frame.timestamp, 4),
                            "captured_at": round(frame.captured + wall_offset, 4),
                            "predictions": prediction_records(result.predictions, shown),
                            "latency_ms": round(result.age * 1000.0, 2),
                        }
                    )
                )
            else:
                if not printed:
                    print(header)
                    printed = True
                cells = "  ".join(f"{pad_left(shown[label], 12)} {p:7.4f}" for label, p in result.predictions)
                print(f"{frame.index:>7} {frame.timestamp:8.3f}s  {cells}  {result.age * 1000.0:7.1f}")
            if window is None and writer is None:
                return True
            label, probability = result.predictions[0]
            image = annotate(frame.image, drawn[label], probability, result.fps, painter)
            if writer is not None:
                writer.write(image)
            if window is not None and not window.show(image):
                return False
            return True

        reader = FrameReader(
            cap,
            info,
            latest_only=live,
            realtime=args.realtime,
            max_frames=args.max_frames,
            stall_timeout=args.source_timeout,
        )
        summary = run_live(
            classifiers,
            reader,
            batch_size=1 if live else batch,
            k=args.top_k,
            threads=threads,
            on_result=on_result,
            max_frames=args.max_frames,
            duration=args.duration,
        )
    if writer is not None and writer.frames:
        summary.extra["saved"] = str(args.save)
        summary.extra["saved_frames"] = writer.frames
    for line in summary.lines():
        line = printable(line)
        print(f"{PROG}: {line}" if not line.startswith(" ") else f"{' ' * len(PROG)}  {line.strip()}", file=sys.stderr)
    if args.json:
        print(json_line({"summary": summary.to_dict()}))
    sys.stdout.flush()
    if summary.error:
        print(f"{PROG}: error: {summary.error}", file=sys.stderr)
        return EXIT_SOURCE_FAILED
    if summary.end == "interrupted":
        return EXIT_INTERRUPTED
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of edgecnn-infer."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: infer_command(argv))


if __name__ == "__main__":
    sys.exit(main())
