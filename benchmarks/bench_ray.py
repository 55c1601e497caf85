"""Ray's overhead: the cats-vs-dogs test photos classified through Ray against edgecnn-infer in one process.

In one run, over the same photos with the same model: images/s of `edgecnn.ray.classify`
on a two-node Ray cluster started here (`ray start --head`, then a second node joining
it, one CPU each; or the cluster at --address), images/s of the Python API's
classify_files in this process (what `edgecnn-infer DIR` runs), their ratio, and how
the rows split across the nodes. The machine's CPUs are shared by both nodes here, so
the ratio is Ray's overhead, not its scaling: on a real cluster each node brings its
own CPUs.

    python benchmarks/bench_ray.py [--photos DIR] [--model catsdogs] [--address HOST:PORT] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_table

import edgecnn
from edgecnn.benchmark import cpu_features, machine_load
from edgecnn.datasets import data_root
from edgecnn.ray import classify

RAY = Path(sys.executable).with_name("ray")


def start_cluster() -> str:
    """A head and a second node on this machine, one CPU each; the head's address."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    os.environ["RAY_AUTH_MODE"] = "token"
    subprocess.run([str(RAY), "get-auth-token", "--generate"], env=env, capture_output=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    head = subprocess.run(
        [str(RAY), "start", "--head", "--port", str(port), "--include-dashboard=false", *common],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    address = next(
        line.split("--address=")[1].strip("'\" ") for line in head.stdout.splitlines() if "ray start --address=" in line
    )
    subprocess.run([str(RAY), "start", "--address", address, *common], env=env, capture_output=True, check=True)
    return address


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=data_root() / "cats_vs_dogs" / "test")
    parser.add_argument("--model", default="catsdogs")
    parser.add_argument("--address", default=None, help="a running cluster (default: start two nodes here)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not args.photos.is_dir():
        sys.exit(f"bench_ray: no photos at {args.photos} (set EDGECNN_DATA or --photos)")
    address = args.address or start_cluster()
    try:
        model = edgecnn.load(args.model, device="cpu")
        files = len(list(model.classify_files([args.photos]).paths))
        rows = []
        ray_rates, local_rates = [], []
        split = {}
        for _ in range(args.repeats):  # taking turns, so load changes hit both alike
            started = time.perf_counter()
            for _ in model.classify_files([args.photos]):
                pass
            local_rates.append(files / (time.perf_counter() - started))
            with tempfile.TemporaryDirectory() as out:
                started = time.perf_counter()
                summary = classify(args.model, [args.photos], output=Path(out), address=address)
                ray_rates.append(files / (time.perf_counter() - started))
                split = summary.rows_by_node
        local, ray = max(local_rates), max(ray_rates)
        rows.append(["edgecnn-infer, one process (classify_files)", files, f"{local:.1f}", "1.00"])
        rows.append([f"edgecnn.ray.classify, {summary.workers} workers", files, f"{ray:.1f}", f"{ray / local:.2f}"])
        print(f"{files} photos of {args.photos}, model {args.model}; best of {args.repeats} runs each")
        print(f"{cpu_features()}; {os.cpu_count()} CPUs; {machine_load()}; cluster {address}\n")
        print_table(["pipeline", "files", "images/s (wall, start-up included)", "vs one process"], rows)
        print("\nrows by node (last Ray run): " + ", ".join(f"{node} {count}" for node, count in sorted(split.items())))
    finally:
        if args.address is None:
            subprocess.run([str(RAY), "stop", "--force"], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
