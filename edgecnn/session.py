"""Classifier: an onnxruntime session that follows the ModelSpec stored in the model file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from edgecnn.errors import UserError
from edgecnn.postprocess import class_probabilities
from edgecnn.preprocess import to_batch
from edgecnn.spec import METADATA_KEY, ModelSpec

DEVICES = ("auto", "cpu", "cuda")
GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def read_spec(session: ort.InferenceSession, name: str) -> ModelSpec:
    """The ModelSpec from the session's model metadata; UserError if absent, malformed, or
    not what the graph's input and output shapes say."""
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None:
        raise UserError(f"{name}: ONNX file has no edgecnn metadata ({METADATA_KEY}); export it with edgecnn-export")
    try:
        spec = ModelSpec.from_json(text)
        spec.check_graph([(i.name, i.shape) for i in session.get_inputs()], [o.shape for o in session.get_outputs()])
    except ValueError as exc:
        raise UserError(f"{name}: {exc}") from None
    return spec


def session_options(threads: int = 0, graph_opt: str = "all") -> ort.SessionOptions:
    """onnxruntime options tuned for latency: `threads` intra-op threads (0: onnxruntime's
    choice), sequential execution, the graph optimisation level, and no spinning (idle pool
    threads that spin would burn the CPU the capture and preprocessing threads need)."""
    if graph_opt not in GRAPH_OPT_LEVELS:
        raise UserError(f"graph optimisation must be one of {', '.join(GRAPH_OPT_LEVELS)}, got {graph_opt!r}")
    levels = dict(zip(GRAPH_OPT_LEVELS, (ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                                         ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                         ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                         ort.GraphOptimizationLevel.ORT_ENABLE_ALL)))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = levels[graph_opt]
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 4  # a failing node is reported by the exception (one line), not also logged
    return options


def _providers_for(device: str) -> list[str]:
    if device not in DEVICES:
        raise UserError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return [CPU]
    if CUDA not in ort.get_available_providers():
        if device == "cuda":
            raise UserError("--device cuda: this onnxruntime build has no CUDA support (install onnxruntime-gpu)")
        return [CPU]
    return [CUDA, CPU]


class Classifier:
    """Runs an edgecnn ONNX model: uint8 frames in, per-class probabilities out.

    `device` is auto (CUDA when it really starts, else CPU), cpu or cuda (an error if
    CUDA cannot run). `provider` names the execution provider that actually runs.
    `threads` and `graph_opt` go to `session_options`; `preprocess_threads` to the kernel.
    One Classifier per thread: its batch buffers are reused between calls.
    """

    def __init__(self, model_path: str | os.PathLike, device: str = "auto", threads: int = 0,
                 graph_opt: str = "all", preprocess_threads: int = 1) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise UserError(f"{path}: no such model file")
        options = session_options(threads, graph_opt)
        providers = _providers_for(device)
        # A missing CUDA library is logged as an error before the session falls back to the
        # CPU; in auto mode that fallback is expected, so keep the log quiet while creating.
        ort.set_default_logger_severity(4 if CUDA in providers else 2)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001  (onnxruntime raises several types for a bad file)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{path}: not a loadable ONNX model ({first[:200]})") from None
        finally:
            ort.set_default_logger_severity(2)
        self.provider = self.session.get_providers()[0]
        if device == "cuda" and self.provider != CUDA:
            raise UserError("--device cuda: onnxruntime could not start the CUDA execution provider "
                            "(no GPU, or the CUDA/cuDNN libraries it needs are missing); use --device auto or cpu")
        self.spec = read_spec(self.session, str(path))
        self.preprocess_threads = preprocess_threads
        self._output_name = self.session.get_outputs()[0].name
        self._buffers: dict[int, np.ndarray] = {}

    def preprocess(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 frames (OpenCV BGR/BGRA/gray, any sizes) -> the graph's float32 NHWC batch.

        The batch lives in a buffer reused between calls of the same size.
        """
        spec = self.spec
        n = len(frames)
        buffer = self._buffers.get(n)
        if buffer is None:
            buffer = self._buffers[n] = np.empty((n, *spec.input_shape), dtype=np.float32)
        return to_batch(frames, (spec.height, spec.width), color=spec.color, src_order="bgr",
                        scale=spec.pixel_scale, out=buffer,
                        method=spec.resize, threads=self.preprocess_threads)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed float32 NHWC batch -> (N, K) class probabilities."""
        outputs = self.session.run([self._output_name], {self.spec.input_name: batch})[0]
        return class_probabilities(outputs, self.spec)

    def classify(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 frames -> (N, K) class probabilities."""
        return self.predict(self.preprocess(frames))
