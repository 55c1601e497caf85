"""Which devices and machines a run trains on: the strategy names and the TF_CONFIG cluster.

No TensorFlow here, so the CLI can check these before it spends seconds importing it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edgecnn.errors import EdgecnnError

# auto: mirrored when more than one GPU is visible, else default.
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
# A multi-worker chief keeps its training state here (inside the run directory) until the run finishes.
BACKUP_DIR = "backup"  # in a run directory: the training state of the last finished epoch
BACKUP_STATE_FILE = "state.json"  # in BACKUP_DIR: history and callback state, written last
CLUSTER_JOBS = ("chief", "worker")


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a multi-worker cluster."""

    task_type: str
    index: int
    workers: int  # every task of the cluster, chief included
    is_chief: bool

    @property
    def label(self) -> str:
        return f"{self.task_type} {self.index}"


def read_tf_config(text: str | None) -> ClusterTask:
    """Parse TF_CONFIG: {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}.

    The chief is the "chief" task when the cluster has one, else worker 0 (TensorFlow's rule);
    it alone writes the run directory. EdgecnnError, naming what is wrong, for anything else.
    """
    if not text:
        raise EdgecnnError(
            "multi-worker training needs TF_CONFIG, the JSON that lists every worker's host:port and "
            'names this one, e.g. {"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgecnnError(f"TF_CONFIG is not valid JSON: {exc.msg} at character {exc.pos}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise EdgecnnError(f'TF_CONFIG needs a "cluster" object and a "task" object, got {text[:200]!r}')
    other_jobs = sorted(set(cluster) - set(CLUSTER_JOBS))
    if other_jobs or not cluster:
        raise EdgecnnError(
            f"TF_CONFIG cluster has jobs {sorted(cluster)}; multi-worker training uses only {list(CLUSTER_JOBS)}"
        )
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses or not all(isinstance(a, str) for a in addresses):
            raise EdgecnnError(f'TF_CONFIG cluster "{job}" must be a non-empty list of "host:port" strings')
    if "chief" in cluster and len(cluster["chief"]) != 1:
        raise EdgecnnError(f'TF_CONFIG cluster "chief" must list exactly one address, got {len(cluster["chief"])}')
    task_type, index = task.get("type"), task.get("index")
    if (
        not isinstance(task_type, str)
        or task_type not in cluster
        or not isinstance(index, int)
        or not 0 <= index < len(cluster[task_type])
    ):
        raise EdgecnnError(f"TF_CONFIG task {task} is not in the cluster {cluster}")
    is_chief = task_type == "chief" or ("chief" not in cluster and index == 0)
    workers = sum(len(addresses) for addresses in cluster.values())
    return ClusterTask(task_type=task_type, index=index, workers=workers, is_chief=is_chief)
