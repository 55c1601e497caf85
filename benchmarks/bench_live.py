"""Live inference, end to end from a 640x480 MJPEG video (decode included), cats vs dogs.

Question 1: how many frames per second does edgecnn's pipeline (capture thread +
inference workers + in-order results) sustain, and where does the time go? Against
the loop a tutorial user writes: cap.read() -> cv2.resize -> float -> Keras predict,
one frame at a time, on the same video in the same run.

Question 2: with a live source faster than inference (a 240 FPS video played with
--realtime into a one-thread session), does the frame age at result stay below two
inference intervals, with the excess frames dropped?

    python benchmarks/bench_live.py [--models catsdogs,catsdogs-int8] [--keras runs/catsdogs/model.keras]
                                    [--lag-seconds 30]

Every model in --models runs the same configurations on the same video in the same run
(FP32 next to INT8, taking turns repeat by repeat); the naive Keras loop runs when --keras exists.

Question 3 (--setups): which set-up (one session on every CPU, or one single-threaded
session per CPU; batches of 1 or 4 frames) runs each model fastest on this CPU? Every
model runs every set-up, taking turns; the table gives each one's FPS and its share of
the model's best. --write records, for each bundled model, the fastest set-up for files
and the fastest at batch 1 for live sources in its recipe ("video"), which
edgecnn.live.plan_video then uses on the CPU.

    python benchmarks/bench_live.py --setups [--models catsdogs,catsdogs-int8,...] [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
from _common import REPO, print_table

import edgecnn
from edgecnn.benchmark import cpu_features, machine_load
from edgecnn.datasets import data_root
from edgecnn.fileio import write_json_atomically
from edgecnn.live import VideoSummary, cpu_count, sessions_plan
from edgecnn.sinks import record_video

WIDTH, HEIGHT = 640, 480


def make_video(path: Path, n_frames: int, fps: float) -> Path:
    """640x480 MJPEG from the cats-vs-dogs test images (each held for 15 frames)."""
    files = sorted((data_root() / "cats_vs_dogs" / "test").glob("*/*.jpg"))[::50]
    if not files:
        sys.exit(f"bench_live: no cats_vs_dogs test images under {data_root()} (set EDGECNN_DATA)")
    images = [cv2.resize(cv2.imread(str(f)), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA) for f in files]
    with record_video(path, fps) as writer:
        for i in range(n_frames):
            writer.write(images[(i // 15) % len(images)])
    return path


def edgecnn_run(
    video: Path,
    model: Path,
    *,
    workers: int,
    threads: int,
    batch: int,
    realtime: bool = False,
    duration: float | None = None,
) -> VideoSummary:
    """One pipeline run as edgecnn-infer does it, minus printing (the Python API's run_video)."""
    return edgecnn.load(model, device="cpu").run_video(
        video,
        lambda result: None,
        top=2,
        realtime=realtime,
        duration=duration,
        workers=workers,
        threads=threads,
        batch_size=batch,
    )


def summary_row(name: str, workers: int, threads: int, batch: int, runs: list, best: dict[str, float]) -> list:
    """The table row of the median-FPS run (recorded in `best` under `name`)."""
    summary = sorted(runs, key=lambda s: s.fps)[len(runs) // 2]
    best[name] = summary.fps
    st = summary.stage_ms
    return [
        f"{name} ({workers}x{threads}, batch {batch})",
        summary.frames,
        f"{summary.fps:.1f}",
        f"{st['capture']:.2f}",
        f"{st['preprocess']:.2f}",
        f"{st['inference']:.2f}",
        f"{st['postprocess']:.3f}",
        f"{summary.frame_age_ms['p95']:.0f}",
    ]


def naive_keras_fps(video: Path, keras_path: Path, n_frames: int) -> tuple[float, float]:
    """(FPS, frames) of the tutorial loop over the first n_frames of the video."""
    from edgecnn.cli import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    model = keras.models.load_model(keras_path, safe_mode=True)
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    model.predict(cv2.resize(frame, (180, 180))[None].astype("float32"), verbose=0)  # build, untimed
    start = time.perf_counter()
    done = 0
    while done < n_frames:
        ok, frame = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(cv2.resize(frame, (180, 180)), cv2.COLOR_BGR2RGB)
        # The tutorial's "/255": this model rescales inside (its Rescaling layer), so feed 0..255.
        model.predict(rgb[None].astype("float32"), verbose=0)
        done += 1
    return done / (time.perf_counter() - start), done


SETUPS = (("per-cpu", 4), ("per-cpu", 1), ("one", 1), ("one", 4))  # (sessions, batch)


def setup_label(sessions: str, batch: int, cpus: int) -> str:
    plan = sessions_plan(sessions, batch, cpus)
    return f"{plan.workers} x {plan.threads} thread(s), batch {batch}"


def compare_setups(video: Path, models: list[Path], repeats: int, write: bool) -> None:
    """Question 3: every model in every set-up (SETUPS), FPS and share of the model's best."""
    cpus = cpu_count()
    fps: dict[Path, dict[tuple[str, int], float]] = {m: {} for m in models}
    for sessions, batch in SETUPS:
        plan = sessions_plan(sessions, batch, cpus)
        runs: dict[Path, list[float]] = {m: [] for m in models}
        for _ in range(repeats):
            for model_path in models:  # turn by turn, so load changes hit every model alike
                runs[model_path].append(
                    edgecnn_run(video, model_path, workers=plan.workers, threads=plan.threads, batch=batch).fps
                )
        for model_path in models:
            fps[model_path][(sessions, batch)] = sorted(runs[model_path])[len(runs[model_path]) // 2]
    rows = []
    for model_path in models:
        best = max(fps[model_path].values())
        for (sessions, batch), value in fps[model_path].items():
            rows.append([model_path.stem, setup_label(sessions, batch, cpus), f"{value:.1f}", f"{value / best:.0%}"])
    print(f"set-ups, median of {repeats} runs each; {cpu_features()}; {machine_load()}")
    print_table(["model", "set-up", "FPS", "of its best"], rows)
    if not write:
        return
    from edgecnn.models import BUNDLED, bundled_path

    for model_path in models:
        name = model_path.stem
        if name not in BUNDLED or bundled_path(name) != model_path:
            continue
        measured = fps[model_path]
        file_setup = max(measured, key=lambda key: measured[key])
        live_setup = max((key for key in measured if key[1] == 1), key=lambda key: measured[key])
        recipe_path = model_path.with_suffix(".recipe.json")
        recipe = json.loads(recipe_path.read_text())
        recipe["video"] = {
            "file": {"sessions": file_setup[0], "batch": file_setup[1]},
            "live": {"sessions": live_setup[0], "batch": live_setup[1]},
            "measured": [{"sessions": s, "batch": b, "fps": round(value, 1)} for (s, b), value in measured.items()],
            "measured_on": f"{cpu_features()}; {cpus} CPUs; 640x480 MJPEG, decode included",
        }
        write_json_atomically(recipe_path, recipe)
        print(f"wrote {recipe_path.name}: file {setup_label(*file_setup, cpus)}, live {setup_label(*live_setup, cpus)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keras",
        type=Path,
        default=REPO / "runs" / "catsdogs" / "model.keras",
        help="Keras model for the naive loop (default: %(default)s)",
    )
    parser.add_argument("--frames", type=int, default=600, help="frames in the throughput video (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="edgecnn runs, median reported (default: %(default)s)")
    parser.add_argument(
        "--naive-frames", type=int, default=150, help="frames for the Keras loop (default: %(default)s)"
    )
    parser.add_argument(
        "--lag-seconds", type=float, default=30.0, help="length of the no-lag run (default: %(default)s)"
    )
    parser.add_argument(
        "--models",
        default="catsdogs,catsdogs-int8",
        help="bundled models or .onnx files, comma-separated, timed in turn (default: %(default)s)",
    )
    parser.add_argument(
        "--lag-fps",
        type=float,
        default=240.0,
        help="frame rate of the live source in the no-lag run, above what one thread infers (default: %(default)s)",
    )
    parser.add_argument("--setups", action="store_true", help="question 3 only: every set-up for every model")
    parser.add_argument("--write", action="store_true", help="with --setups: record each bundled model's fastest")
    args = parser.parse_args()
    from edgecnn.models import resolve_model

    models = [resolve_model(m.strip()) for m in args.models.split(",") if m.strip()]
    model = models[0]
    cpus = cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "cam640.avi", args.frames, 30.0)
        if args.setups:
            compare_setups(video, models, args.repeats, args.write)
            return 0
        fast = make_video(Path(tmp) / "cam640_fast.avi", int(args.lag_seconds * args.lag_fps) + 60, args.lag_fps)
        print(f"video: {args.frames} frames 640x480 MJPEG; {cpus} CPU(s); models {', '.join(m.name for m in models)}\n")

        configs = [
            ("edgecnn, CLI default for files", min(cpus, 8), 1, 4),
            ("edgecnn, 1 session x all threads, batch 1", 1, cpus, 1),
        ]
        rows, best = [], {}
        for name, workers, threads, batch in configs:
            # The models take turns, repeat by repeat, so load changes hit them alike.
            runs: dict[Path, list] = {m: [] for m in models}
            for _ in range(args.repeats):
                for model_path in models:
                    runs[model_path].append(
                        edgecnn_run(video, model_path, workers=workers, threads=threads, batch=batch)
                    )
            for model_path in models:
                label = f"{name} [{model_path.stem}]" if len(models) > 1 else name
                rows.append(summary_row(label, workers, threads, batch, runs[model_path], best))

        naive_fps = None
        if args.keras.is_file():
            naive_fps, naive_n = naive_keras_fps(video, args.keras, args.naive_frames)
            rows.append(
                [
                    f"naive loop: read, resize, Keras predict ({args.keras.name})",
                    naive_n,
                    f"{naive_fps:.1f}",
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
        print_table(
            ["pipeline", "frames", "FPS", "capture ms", "preproc ms", "infer ms", "post ms", "age p95 ms"], rows
        )
        default_fps = next(iter(best.values()))
        if naive_fps:
            print(
                f"\nend to end: {default_fps:.1f} FPS, {default_fps / naive_fps:.1f}x the naive Keras loop "
                "(stage ms are per frame per worker: workers overlap)"
            )
        else:
            print(f"\n(no Keras model at {args.keras}: naive loop skipped; stage ms are per frame per worker)")

        lag = edgecnn_run(fast, model, workers=1, threads=1, batch=1, realtime=True, duration=args.lag_seconds)
        interval = 1000.0 / lag.fps if lag.fps else float("inf")
        age = lag.frame_age_ms
        print(
            f"\nno lag: {args.lag_fps:g} FPS video --realtime into 1 session x 1 thread for {lag.seconds:.1f} s: "
            f"{lag.frames} results ({lag.fps:.1f}/s, one every {interval:.1f} ms; inference "
            f"{lag.stage_ms['inference']:.1f} ms), {lag.dropped} frames dropped"
        )
        verdict = "OK" if age["p95"] < 2 * interval else "FAIL"
        print(
            f"frame age at result: p50 {age['p50']:.1f} ms, p95 {age['p95']:.1f} ms, max {age['max']:.1f} ms; "
            f"p95 < 2 intervals ({2 * interval:.1f} ms): {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
