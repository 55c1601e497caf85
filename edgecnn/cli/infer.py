"""edgecnn-infer: classify images (files, directories) or live video (camera, file, stream)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

from edgecnn import plot
from edgecnn.api import DEFAULT_BATCH_SIZE, Model, load
from edgecnn.cli import EXIT_INTERRUPTED, run_command
from edgecnn.errors import EdgecnnError
from edgecnn.fileio import check_output_path
from edgecnn.labels import locale_language
from edgecnn.live import EndReason
from edgecnn.models import BUNDLED, DEFAULT_MODEL
from edgecnn.session import GRAPH_OPT_LEVELS
from edgecnn.sinks import (
    VIDEO_CODECS,
    Chart,
    JsonLines,
    Overlay,
    ProgressBar,
    Report,
    Sink,
    Sinks,
    Table,
    Window,
    check_video_suffix,
    display_problem,
    record_video,
)
from edgecnn.sources import IMAGE_SUFFIXES
from edgecnn.text import printable

EXIT_SOURCE_FAILED = 1
VIDEO_ONLY_OPTIONS = ("realtime", "max_frames", "duration", "show", "save", "workers")
# Library parameters (EdgecnnError.parameter) and the flags that set them.
FLAGS = {
    "model": "--model",
    "source": "--camera",
    "path": "--save",
    "device": "--device",
    "top": "--top-k",
    "batch_size": "--batch-size",
    "workers": "--workers",
    "threads": "--threads",
    "max_frames": "--max-frames",
    "duration": "--duration",
    "timeout": "--source-timeout",
    "lang": "--lang",
    "output": "--output",
    "address": "--ray",
    "threads_per_worker": "--threads",
    "plot": "--plot",  # check_args names it: the chart's checks say `path`, which is --save's here
}

PROG = "edgecnn-infer"
EPILOG = """how the arguments are read:
  Without --model, the first positional argument is the model file unless it is a
  directory or an image (.png, .jpg, ...); the other positionals are images or
  directories. With --model, every positional is an image or directory. No model given
  at all: the bundled cats-vs-dogs model. With --camera SOURCE there are no images.

examples:
  edgecnn-infer fmnist.onnx shirt.png shoes/
  edgecnn-infer --model fmnist shirt.png --json
  edgecnn-infer --camera 0 --show                    # webcam, the default cats-vs-dogs model
  edgecnn-infer --camera clip.mp4 --json > out.jsonl # every frame, in order, as fast as possible
  edgecnn-infer --camera clip.mp4 --realtime --show  # play at the file's FPS like a camera
  edgecnn-infer --camera rtsp://cam.local/stream --save annotated.mp4 --duration 60
  edgecnn-infer catsdogs.onnx photos/ --device cuda
  edgecnn-infer runs/photos/model.onnx @runs/photos/split/test.txt   # a run's own test images
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
        fromfile_prefix_chars="@",
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="[MODEL.onnx] IMAGE_OR_DIR",
        help="model file (first, unless --model is given or it is an image or directory), "
        "then image files and/or directories (searched recursively); @LIST reads arguments from the file LIST, "
        "one per line (RUN/split/test.txt lists a training run's test images)",
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
        f"folder or sample file name gives it (the first {plot.MAX_CHART_IMAGES} images; .png, .svg or .pdf; "
        "needs matplotlib: pip install 'edgecnn[plot]')",
    )
    group = parser.add_argument_group("a Ray cluster (pip install 'edgecnn[ray]')")
    group.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="classify the images on a Ray cluster: auto joins the one running here, HOST:PORT a remote "
        "one, no address starts a local one; needs --output",
    )
    group.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --ray: the Parquet results, one row per file; a rerun into it skips the files already there",
    )
    group = parser.add_argument_group("runtime")
    group.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="execution provider: auto uses CUDA when it really starts (default: %(default)s)",
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
        help="video: parallel inference sessions: video files one per CPU (max 8) on CPU, else 1; live sources 1; "
        "with --ray: actors (default: the cluster's CPUs / --threads)",
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


def split_model_and_inputs(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """(model given on the command line or None, image inputs).

    Without --model, the first positional is the model unless it is a directory or has
    an image suffix (so `edgecnn-infer model.onnx photos/` works as it always did).
    """
    inputs = list(args.inputs)
    if args.model is not None or not inputs:
        return args.model, inputs
    first = Path(inputs[0])
    if first.is_dir() or first.suffix.lower() in IMAGE_SUFFIXES:
        return None, inputs
    return inputs[0], inputs[1:]


def check_args(args: argparse.Namespace, inputs: list[str]) -> None:
    """Usage errors that argparse cannot see, found before any work starts: what goes with what,
    and whether --save and --plot can be written. (Values are checked by the library, which names them.)"""
    if args.plot is not None:
        if args.camera is not None:
            raise EdgecnnError("--plot charts images; for video use --show or --save")
        try:
            plot.check_chart_path(args.plot)
        except EdgecnnError as exc:
            raise EdgecnnError(exc.reason, parameter="plot", value=args.plot) from None
        check_output_path(args.plot, "--plot", inputs=tuple(inputs))
        if problem := plot.matplotlib_problem():
            raise EdgecnnError(problem, parameter="plot")
    if (args.ray is None) != (args.output is None):
        raise EdgecnnError("--ray and --output go together: the cluster's results are written to --output DIR")
    if args.ray is not None:
        used = [flag for flag, value in (("--camera", args.camera), ("--plot", args.plot)) if value is not None]
        if used:
            raise EdgecnnError(f"{used[0]} does not go with --ray, which classifies image files into --output")
    if args.camera is not None:
        if inputs:
            raise EdgecnnError(f"--camera reads video; image arguments are not allowed with it (got {inputs[0]})")
        if args.save is not None:
            check_video_suffix(args.save)
            check_output_path(args.save, "--save", inputs=(args.camera,))
        return
    used = [
        o for o in VIDEO_ONLY_OPTIONS if getattr(args, o) not in (None, False) and not (o == "workers" and args.ray)
    ]
    if used:
        raise EdgecnnError(f"--{used[0].replace('_', '-')} applies to video only (use it with --camera SOURCE)")
    if not inputs:
        raise EdgecnnError("nothing to classify: give IMAGE_OR_DIR... or --camera SOURCE (see --help)")


def infer_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    model_name, inputs = split_model_and_inputs(args)
    check_args(args, inputs)
    if args.ray is not None:
        return ray_command(args, DEFAULT_MODEL if model_name is None else model_name, inputs)
    model = load(
        DEFAULT_MODEL if model_name is None else model_name,
        lang=args.lang if args.lang is not None else locale_language(),
        device=args.device,
        threads=args.threads or 0,
        graph_opt=args.graph_opt,
    )
    report = Report(PROG)
    if args.camera is not None:
        return video_command(args, model, report)
    return images_command(args, model, inputs, report)


def ray_command(args: argparse.Namespace, model_name: str, inputs: list[str]) -> int:
    """--ray: the images classified on a Ray cluster into --output; the summary on stderr (and stdout with --json)."""
    from edgecnn.ray import classify

    summary = classify(
        model_name,
        inputs,
        output=args.output,
        top=args.top_k,
        batch_size=DEFAULT_BATCH_SIZE if args.batch_size is None else args.batch_size,
        workers=args.workers,
        threads_per_worker=args.threads or 1,
        address=args.ray or None,
    )
    nodes = ", ".join(f"{node} {rows}" for node, rows in sorted(summary.rows_by_node.items())) or "none"
    line = (
        f"{PROG}: {summary.classified} files classified on Ray ({summary.errors} could not be read; "
        f"{summary.skipped} already in {summary.output}, skipped) in {summary.seconds:.1f} s, "
        f"{summary.rate:.1f} files/s, {summary.workers} workers; rows by node: {nodes}"
    )
    if summary.accuracy is not None:
        line += f"; top-1 {summary.correct} / {summary.labelled} right ({summary.accuracy:.4f})"
    print(printable(line), file=sys.stderr)
    if args.json:
        record = {**dataclasses.asdict(summary), "output": str(summary.output), "files": summary.files}
        print(json.dumps({"summary": record}, ensure_ascii=False))
    return 2 if summary.errors else 0


def language_note(args: argparse.Namespace, model: Model) -> str | None:
    """What to tell a user whose --lang the model has no class names in (the locale's language is silent)."""
    if args.lang is None or model.language is not None:
        return None
    have = ", ".join(sorted(model.spec.display_names)) or "none"
    return f"{model.spec.name} has no class names in {args.lang!r} (it has: {have}); showing its own class names"


def text_output(args: argparse.Namespace, model: Model) -> Sink:
    """stdout: JSON lines (with display labels when a language was chosen) or the table."""
    return JsonLines(sys.stdout, display_labels=model.language is not None) if args.json else Table(sys.stdout)


def images_command(args: argparse.Namespace, model: Model, inputs: list[str], report: Report) -> int:
    batch_size = DEFAULT_BATCH_SIZE if args.batch_size is None else args.batch_size
    run = model.classify_files(inputs, top=args.top_k, batch_size=batch_size)
    bar = ProgressBar()
    chart = None if args.plot is None else Chart(args.plot, model.display_labels, args.top_k)
    outputs = [text_output(args, model)]
    if not args.json:
        outputs.append(bar)
    outputs.append(report)
    if chart is not None:
        outputs.append(chart)  # after the report: the summary line comes before the chart is drawn
    sinks = Sinks(outputs)
    sinks.start_images(run)
    for note in (language_note(args, model), chart.note if chart is not None else None):
        if note:
            report.say(note)
    try:
        for result in run:
            sinks.image(result)
    finally:
        bar.close()  # when the run stopped early (Ctrl-C); else finish_images did
    summary = run.summary
    assert summary is not None
    sinks.finish_images(summary)
    if chart is not None and chart.images:
        charted = len(chart.images)
        more = f" (the first {charted} of {summary.classified})" if summary.classified > charted else ""
        top = min(args.top_k, len(model.class_names))
        report.say(f"wrote {args.plot}: {charted} image(s) with their top-{top} classes{more}")
    return 2 if summary.failed else 0


def video_command(args: argparse.Namespace, model: Model, report: Report) -> int:
    with contextlib.ExitStack() as stack:
        run = stack.enter_context(
            model.video(
                args.camera,
                top=args.top_k,
                realtime=args.realtime,
                max_frames=args.max_frames,
                duration=args.duration,
                timeout=args.source_timeout,
                workers=args.workers,
                threads=args.threads,
                batch_size=args.batch_size,
            )
        )
        if args.realtime and run.info.live:
            report.say(f"--realtime has no effect on a {run.info.kind}: it is live already")
        if args.batch_size is not None and args.batch_size > 1 and run.live:
            report.say("--batch-size ignored: a live source is classified one newest frame at a time")
        window = recorder = None
        if args.show:
            problem = display_problem()
            if problem is None:
                window = Window(f"{PROG}: {run.info.name}")
                stack.callback(window.close)
            else:
                report.say(f"cannot show video: {problem}; continuing headless")
        if args.save is not None:
            # Commits on leaving this block, also when a signal ended the run (what was recorded is
            # kept); an exception (a failed write, a model error) leaves no file.
            recorder = stack.enter_context(record_video(args.save, run.info.fps))
        outputs: list[Sink] = [text_output(args, model), report]
        notes = [language_note(args, model)]
        if window is not None or recorder is not None:
            overlay = Overlay(window, recorder, labels=model.display_labels)
            notes.append(overlay.note)
            outputs.append(overlay)
        sinks = Sinks(outputs)
        sinks.start_video(run)
        for note in notes:
            if note:
                report.say(note)
        summary = run.run(sinks.frame)
    if recorder is not None and recorder.frames:
        summary.extra["saved"] = str(args.save)
        summary.extra["saved_frames"] = recorder.frames
    sinks.finish_video(summary)
    if summary.error:
        return EXIT_SOURCE_FAILED
    if summary.end == EndReason.INTERRUPTED:
        return EXIT_INTERRUPTED
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of edgecnn-infer."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: infer_command(argv), FLAGS)


if __name__ == "__main__":
    sys.exit(main())
