"""`edgecnn-export --check` for a quantised (QDQ) model: onnxruntime's integer kernels vs the
C reference, tensor by tensor, in units of each tensor's quantisation step.

onnxruntime fuses DequantizeLinear -> Conv/MatMul/pool -> QuantizeLinear into integer
kernels (QLinearConv, QGemm, ...). Only the QuantizeLinear outputs are exposed as extra
graph outputs, since exposing a float tensor in between would stop that fusion and
check float kernels instead. The C reference runs the same graph as the ONNX spec
defines it (integer tensors exact, float ops in between in float32). Two columns:

- isolated: each reference step reads onnxruntime's values of the quantised tensors
  before it, so a row measures that layer's kernels alone. Requantisation rounds
  x * (s_x * s_w / s_y) in float on one side and conv-in-float-then-divide on the other,
  so ties and near-ties may land one step apart: at most 1 step is expected.
- end to end: each side runs on its own values; early one-step differences may grow.

Passes when every quantised tensor is within `max_steps` (isolated), and the outputs
computed in isolation from onnxruntime's last quantised tensors match within `tolerance`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgecnn.parity import TOLERANCE, max_abs_diff
from edgecnn.reference.check import _ort_session, input_shape, random_inputs, read_spec, real_inputs
from edgecnn.reference.model import ReferenceModel

MAX_STEPS = 1


def is_quantized(model: onnx.ModelProto) -> bool:
    """True when the graph holds QuantizeLinear nodes (edgecnn's INT8 files are QDQ)."""
    return any(node.op_type == "QuantizeLinear" for node in model.graph.node)


@dataclass
class StepRow:
    """One QuantizeLinear output: onnxruntime vs the C reference, in quantisation steps."""

    index: int
    output: str
    shape: tuple[int, ...]
    scale: float  # the largest step of the tensor (per-axis: the largest of its scales)
    isolated_steps: int
    isolated_fraction: float  # share of values that differ at all, isolated
    end_to_end_steps: int


@dataclass
class QuantCheckReport:
    """The step table plus the output comparisons."""

    model: str
    max_steps: int
    tolerance: float
    rows: list[StepRow] = field(default_factory=list)
    layer_inputs: str = ""
    outputs_isolated: float = 0.0  # max |ORT - C| on the outputs, computed from ORT's last quantised tensors
    outputs_end_to_end: dict[str, float] = field(default_factory=dict)
    top1_agreement: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            bool(self.rows)
            and all(r.isolated_steps <= self.max_steps for r in self.rows)
            and self.outputs_isolated <= self.tolerance
        )

    def summary(self) -> str:
        worst = max(self.rows, key=lambda r: r.isolated_steps)
        e2e = max(r.end_to_end_steps for r in self.rows)
        return (
            f"{len(self.rows)} quantised tensors: isolated max {worst.isolated_steps} step(s), end to end max "
            f"{e2e}; outputs from onnxruntime's integers {self.outputs_isolated:.2e}"
        )

    def format(self) -> str:
        lines = [
            f"INT8 check of {self.model}: onnxruntime integer kernels vs C reference "
            f"(at most {self.max_steps} step per quantised tensor, isolated)"
        ]
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(
            f"per quantised tensor, on {self.layer_inputs} (steps = |Δq|; isolated: reference fed "
            "onnxruntime's inputs):"
        )
        lines.append(f"  {'#':>3}  {'tensor':<44} {'shape':<18} {'step':>9} {'isolated':>8} {'differ':>8} {'e2e':>5}")
        for r in self.rows:
            shape = "x".join(str(d) for d in r.shape)
            name = r.output if len(r.output) <= 44 else "…" + r.output[-43:]
            lines.append(
                f"  {r.index:>3}  {name:<44} {shape:<18} {r.scale:>9.3g} {r.isolated_steps:>8} "
                f"{r.isolated_fraction * 100:>7.2g}% {r.end_to_end_steps:>5}"
            )
        lines.append(
            f"outputs from onnxruntime's last quantised tensors: max |ORT - C| {self.outputs_isolated:.2e} "
            f"(tolerance {self.tolerance:g})"
        )
        for label, d in self.outputs_end_to_end.items():
            lines.append(
                f"  end to end, {label}: max |ORT - C| {d:.2e}, top-1 agreement {self.top1_agreement[label]:.4f}"
            )
        lines.append(f"{'PASS' if self.passed else 'FAIL'}: {self.summary()}")
        return "\n".join(lines)


def _steps(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return int(diff.max()) if diff.size else 0, float((diff > 0).mean()) if diff.size else 0.0


def check_quantized(
    model: onnx.ModelProto | str | os.PathLike,
    images: Path | None = None,
    max_steps: int = MAX_STEPS,
    tolerance: float = TOLERANCE,
    image_limit: int = 16,
) -> QuantCheckReport:
    """Run the QDQ graph in onnxruntime and in the C reference; see the module doc."""
    reference = ReferenceModel(model)
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(model)
    spec = read_spec(proto, reference.source)
    report = QuantCheckReport(model=reference.source, max_steps=max_steps, tolerance=tolerance)
    inputs = random_inputs(input_shape(proto, spec), dtype=spec.input_dtype if spec is not None else "float32")
    real = real_inputs(spec, images, image_limit) if spec is not None else None
    if real is None:
        report.notes.append("no real images given or found under EDGECNN_DATA or ../shared/data: random inputs only")
    else:
        inputs[real[0]] = real[1]
    name = reference.input_names[0]
    plain = _ort_session(proto)
    quantized = [(s, s.outputs[0]) for s in reference.steps if s.op_type == "QuantizeLinear"]
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    for _, out in quantized:
        if out not in reference.output_names:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.UINT8, None))
    # QuantizeLinear to int8 would need that type here; edgecnn's graphs quantise activations to uint8.
    probe_session = _ort_session(probe)
    names = [o.name for o in probe.graph.output]
    for label, x in inputs.items():
        ort_out = plain.run(None, {name: x})[0]
        c_out = reference(x)
        report.outputs_end_to_end[label] = max_abs_diff(ort_out, c_out)
        report.top1_agreement[label] = float((_top1(ort_out) == _top1(c_out)).mean())
    report.layer_inputs = list(inputs)[-1]
    x = inputs[report.layer_inputs]
    got = dict(zip(names, probe_session.run(names, {name: x}), strict=True))
    if max_abs_diff(got[names[0]], plain.run(None, {name: x})[0]) != 0:
        report.notes.append("exposing the quantised tensors changed onnxruntime's output: fusion was disturbed")
    end_to_end = reference.run_all(x)
    values = {**reference.constants, name: x}
    for step in reference.steps:
        args = [values[n] if n else None for n in step.inputs]
        while args and args[-1] is None:
            args.pop()
        for out, value in zip(step.outputs, step.run(*args), strict=True):
            if out:
                values[out] = value
        if step.op_type == "QuantizeLinear":
            out = step.outputs[0]
            isolated, fraction = _steps(got[out], values[out])
            e2e, _ = _steps(got[out], end_to_end[out])
            scale = float(np.max(values[step.inputs[1]]))
            report.rows.append(StepRow(step.index, out, tuple(values[out].shape), scale, isolated, fraction, e2e))
            values[out] = got[out]  # the next layers start from onnxruntime's integers
    report.outputs_isolated = max(max_abs_diff(got[o], values[o]) for o in reference.output_names)
    return report


def _top1(outputs: np.ndarray) -> np.ndarray:
    flat = outputs.reshape(len(outputs), -1)
    return (flat[:, 0] > 0.5).astype(int) if flat.shape[1] == 1 else flat.argmax(1)
