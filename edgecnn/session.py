"""Classifier: an onnxruntime session that follows the ModelSpec stored in the model file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgecnn.errors import EdgecnnError, first_line
from edgecnn.postprocess import class_probabilities
from edgecnn.preprocess import to_batch
from edgecnn.spec import spec_from_metadata

DEVICES = ("auto", "cpu", "cuda")
GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
MAX_THREADS = 4 * (os.cpu_count() or 1)  # threads per session, and sessions: beyond this onnxruntime only thrashes


def session_options(threads: int = 0, graph_opt: str = "all") -> ort.SessionOptions:
    """onnxruntime options tuned for latency: `threads` intra-op threads (0: onnxruntime's
    choice), sequential execution, the graph optimisation level, and no spinning (idle pool
    threads that spin would burn the CPU the capture and preprocessing threads need)."""
    if graph_opt not in GRAPH_OPT_LEVELS:
        raise EdgecnnError(f"must be one of {', '.join(GRAPH_OPT_LEVELS)}", parameter="graph_opt", value=graph_opt)
    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= MAX_THREADS:
        raise EdgecnnError(
            f"must be from 0 (onnxruntime's choice) to {MAX_THREADS} (4 x {os.cpu_count()} CPUs)",
            parameter="threads",
            value=threads,
        )
    levels = dict(
        zip(
            GRAPH_OPT_LEVELS,
            (
                ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            ),
            strict=True,
        )
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = levels[graph_opt]
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 4  # a failing node is reported by the exception (one line), not also logged
    return options


GPU_INSTALL = "pip install 'edgecnn[gpu]'"
# The libraries onnxruntime's CUDA provider loads, and the pip package (a dependency of
# edgecnn[gpu]) that ships each one. libcuda.so.1 is the driver's: no pip package has it.
CUDA_LIBRARY_PACKAGES = {
    "libcuda.so": "the NVIDIA driver",
    "libcudart.so": "nvidia-cuda-runtime",
    "libcublasLt.so": "nvidia-cublas",
    "libcublas.so": "nvidia-cublas",
    "libcurand.so": "nvidia-curand",
    "libcufft.so": "nvidia-cufft",
    "libnvrtc.so": "nvidia-cuda-nvrtc",
    "libcudnn": "nvidia-cudnn-cu13",
}
# No TF32: measured on an H100, TF32 convolutions moved the bundled models' probabilities by up
# to 2e-4 from the CPU's (float32: 3e-7) and were no faster at batch 1 or 32 for these models.
CUDA_OPTIONS = {"use_tf32": "0"}
_cuda_missing: list[str] | None = None  # load_cuda_libraries' answer; the libraries load once per process


def load_cuda_libraries() -> list[str]:
    """Load the CUDA and cuDNN libraries from the nvidia-* wheels (onnxruntime.preload_dlls),
    before the first CUDA session; return the names of those that could not be loaded.

    preload_dlls reports failures by printing; they are captured here (stdout may carry
    JSON lines) and turned into the returned names. Runs once per process.
    """
    global _cuda_missing
    if _cuda_missing is None:
        import contextlib
        import ctypes
        import io
        import re

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            ort.preload_dlls(cuda=True, cudnn=True)
        missing = re.findall(r"Failed to load (?:\S*/)?(lib[\w.]+?\.so[.\d]*)", printed.getvalue())
        try:
            ctypes.CDLL("libcuda.so.1")
        except OSError:
            missing.insert(0, "libcuda.so.1")
        _cuda_missing = list(dict.fromkeys(missing))
    return _cuda_missing


def describe_missing(libraries: list[str]) -> str:
    """'libcudnn.so.9 (nvidia-cudnn-cu13)', naming the package that ships each library."""

    def package(name: str) -> str:
        return next((pkg for prefix, pkg in CUDA_LIBRARY_PACKAGES.items() if name.startswith(prefix)), "unknown")

    return ", ".join(f"{name} ({package(name)})" for name in libraries)


def _providers_for(device: str) -> list[Any]:
    if device not in DEVICES:
        raise EdgecnnError(f"must be one of {', '.join(DEVICES)}", parameter="device", value=device)
    if device == "cpu":
        return [CPU]
    if CUDA not in ort.get_available_providers():
        if device == "cuda":
            raise EdgecnnError(
                f"this onnxruntime build has no CUDA support; install it with: {GPU_INSTALL}",
                parameter="device",
                value=device,
            )
        return [CPU]
    missing = load_cuda_libraries()
    if missing and device == "cuda":
        driver = " (no NVIDIA driver: is there a GPU?)" if missing[0].startswith("libcuda.so") else ""
        raise EdgecnnError(
            f"cannot load {describe_missing(missing)}{driver}; install the CUDA libraries with: {GPU_INSTALL}",
            parameter="device",
            value=device,
        )
    return [CPU] if missing else [(CUDA, CUDA_OPTIONS), CPU]


class Classifier:
    """Runs an edgecnn ONNX model: uint8 frames in, per-class probabilities out.

    `device` is auto (CUDA when it really starts, else CPU), cpu or cuda (an error if
    CUDA cannot run). `provider` names the execution provider that actually runs.
    `threads` and `graph_opt` go to `session_options`; `preprocess_threads` to the kernel.
    `io_binding` (default: on CUDA) binds a device-side input and output per batch size,
    so each batch crosses to the GPU in one copy and back in one. One Classifier per
    thread: its batch buffers are reused between calls.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        device: str = "auto",
        threads: int = 0,
        graph_opt: str = "all",
        preprocess_threads: int = 1,
        io_binding: bool | None = None,
    ) -> None:
        self.path = path = Path(model_path)
        if not path.is_file():
            raise EdgecnnError(f"{path}: no such model file")
        options = session_options(threads, graph_opt)
        providers = _providers_for(device)
        # A missing CUDA library is logged as an error before the session falls back to the
        # CPU; in auto mode that fallback is expected, so keep the log quiet while creating.
        ort.set_default_logger_severity(4 if len(providers) > 1 else 2)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001  (onnxruntime raises several types for a bad file)
            raise EdgecnnError(f"{path}: not a loadable ONNX model ({first_line(exc, limit=200)})") from None
        finally:
            ort.set_default_logger_severity(2)
        self.provider = self.session.get_providers()[0]
        if device == "cuda" and self.provider != CUDA:
            raise EdgecnnError(
                "onnxruntime could not start the CUDA execution provider (no GPU, or the CUDA/cuDNN "
                "libraries it needs are missing); device 'auto' falls back to the CPU",
                parameter="device",
                value=device,
            )
        self.spec = spec_from_metadata(
            self.session.get_modelmeta().custom_metadata_map,
            ([(i.name, i.shape) for i in self.session.get_inputs()], [o.shape for o in self.session.get_outputs()]),
            str(path),
        )
        self.preprocess_threads = preprocess_threads
        self._output_name = self.session.get_outputs()[0].name
        self._buffers: dict[int, np.ndarray] = {}
        self.io_binding = self.provider == CUDA if io_binding is None else bool(io_binding)
        self._bound: dict[int, tuple[ort.IOBinding, ort.OrtValue]] = {}

    def preprocess(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 frames (OpenCV BGR/BGRA/gray, any sizes) -> the graph's input batch: float32
        NHWC images, or what the spec says (windows, uint8 quantised values).

        The batch lives in a buffer reused between calls of the same size.
        """
        spec = self.spec
        n = len(frames)
        buffer = self._buffers.get(n)
        if buffer is None:
            buffer = self._buffers[n] = np.empty((n, *spec.input_shape), dtype=spec.input_dtype)
        try:
            return to_batch(
                frames, src_order="bgr", out=buffer, threads=self.preprocess_threads, **spec.preprocess_args()
            )
        except ValueError as exc:  # the spec is checked at load, so what is wrong is a frame the caller gave
            raise EdgecnnError(str(exc)) from None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The graph's input batch (as `preprocess` makes it) -> (N, K) class probabilities.

        A graph that fails at run time (it loads, but a node rejects its input) is a EdgecnnError
        naming the model file and onnxruntime's reason.
        """
        try:
            if self.io_binding:
                outputs = self._run_bound(batch)
            else:
                outputs = self.session.run([self._output_name], {self.spec.input_name: batch})[0]
        except Exception as exc:
            if type(exc).__module__.split(".")[0] != "onnxruntime":
                raise
            raise EdgecnnError(f"{self.path}: onnxruntime cannot run the model ({first_line(exc)})") from None
        return class_probabilities(outputs, self.spec)

    def _run_bound(self, batch: np.ndarray) -> np.ndarray:
        """session.run through IO binding: the batch is copied into an input OrtValue that lives
        on the provider's device (one per batch size), the output stays bound there, and comes
        back in one copy."""
        n = len(batch)
        if n not in self._bound:
            device = "cuda" if self.provider == CUDA else "cpu"
            value = ort.OrtValue.ortvalue_from_shape_and_type(batch.shape, self.spec.input_dtype, device, 0)
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(self.spec.input_name, value)
            binding.bind_output(self._output_name, device, 0)
            self._bound[n] = (binding, value)
        binding, value = self._bound[n]
        value.update_inplace(np.ascontiguousarray(batch, dtype=self.spec.input_dtype))
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def classify(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 frames -> (N, K) class probabilities."""
        return self.predict(self.preprocess(frames))
