"""Does edgecnn's `allow_spinning=0` (edgecnn/session.py) cost latency, and where?

onnxruntime's intra-op pool threads spin between parallel sections by default, which
saves the wake-up of a sleeping thread per section but burns the core the capture and
preprocessing threads of the live pipeline need. Same model, same input, same run:
spinning on vs off, per thread count, FP32 and INT8, batch 1 (a live stream's case),
the two settings taking turns in rounds. With one intra-op thread there is no pool, so
the setting can only matter from two threads up.

    python benchmarks/bench_spinning.py [--models catsdogs,catsdogs-int8] [--rounds 10 --calls 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import onnxruntime as ort
from _common import print_table

from edgecnn.models import resolve_model
from edgecnn.session import Classifier, session_options

ort.set_default_logger_severity(3)  # overriding the spinning entry logs a warning per session


def session(path: Path, threads: int, spinning: bool) -> ort.InferenceSession:
    options = session_options(threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="catsdogs,catsdogs-int8")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    print(f"load at start: {os.getloadavg()} on {os.cpu_count()} cores")
    rows = []
    for name in args.models.split(","):
        path = resolve_model(name)
        spec = Classifier(path, device="cpu").spec
        x = np.random.default_rng(0).random((1, *spec.input_shape), dtype=np.float32)
        for threads in (int(t) for t in args.threads.split(",")):
            sessions = {spin: session(path, threads, spin) for spin in (False, True)}
            times: dict[bool, list[float]] = {False: [], True: []}
            for s in sessions.values():
                for _ in range(10):
                    s.run(None, {spec.input_name: x})
            cpu = {False: 0.0, True: 0.0}
            for _ in range(args.rounds):
                for spin, s in sessions.items():
                    cpu_start = time.process_time()
                    for _ in range(args.calls):
                        start = time.perf_counter()
                        s.run(None, {spec.input_name: x})
                        times[spin].append(time.perf_counter() - start)
                    cpu[spin] += time.process_time() - cpu_start
            off, on = (float(np.median(times[k])) * 1e3 for k in (False, True))
            n = args.rounds * args.calls
            rows.append(
                [
                    name,
                    threads,
                    f"{off:.3f}",
                    f"{on:.3f}",
                    f"{(off / on - 1) * 100:+.1f}%",
                    f"{cpu[False] / n * 1e3:.2f}",
                    f"{cpu[True] / n * 1e3:.2f}",
                ]
            )
    print_table(
        ["model", "threads", "no spin ms", "spin ms", "no-spin cost", "CPU ms/run no spin", "CPU ms/run spin"], rows
    )
    print(f"load at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
