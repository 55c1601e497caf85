"""Three-way parity: Keras vs onnxruntime vs the C reference, and a per-layer table.

The final outputs (probabilities) must agree within `tolerance` (edgecnn.parity) for every pair
on every input set: random batches and, where the data is found, real images
preprocessed as the runtime does. The per-layer table compares every node's output,
onnxruntime (the graph copied with each intermediate tensor added as a graph output)
against the C reference; it is a diagnostic, not thresholded, since intermediate
activations are unbounded: its `rel` column (|diff| / max(1, max |C|)) points at the
first node where the two drift apart.

onnxruntime is imported only inside these functions; TensorFlow never (the caller
passes a Keras predict function; see `edgecnn.training.export.keras_predictor`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgecnn.datasets import IDX_FILES, known_data
from edgecnn.errors import EdgecnnError
from edgecnn.parity import BATCH_SIZES, TOLERANCE, Agreement, agreement, logits_output, max_abs_diff
from edgecnn.postprocess import class_probabilities
from edgecnn.reference.model import ReferenceModel
from edgecnn.spec import METADATA_KEY, ModelSpec, has_model_spec, read_model_spec

IMAGE_LIMIT = 16
KERAS, ORT, C_REF = "keras", "onnxruntime", "C reference"

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass
class LayerRow:
    """One node output: onnxruntime vs C reference."""

    index: int
    op_type: str
    output: str
    shape: tuple[int, ...]
    max_abs_diff: float
    max_abs_value: float

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(1.0, self.max_abs_value)


@dataclass
class CheckReport:
    """Max abs differences per input set and pair, and the per-layer table."""

    model: str
    tolerance: float
    diffs: dict[str, dict[str, float]] = field(default_factory=dict)  # probabilities, per input set and pair
    agreements: dict[str, dict[str, Agreement]] = field(default_factory=dict)  # both figures, same keys
    layers: list[LayerRow] = field(default_factory=list)
    layer_inputs: str = ""
    notes: list[str] = field(default_factory=list)
    skipped: str = ""  # why the C reference could not run the model (the ModelError's one line)
    refused_op: str = ""  # the operator(s) it refused, when one is to blame

    @property
    def worst(self) -> dict[str, float]:
        """Per pair, the largest difference over all input sets (NaN counts as a failure)."""
        pairs: dict[str, float] = {}
        for per_pair in self.diffs.values():
            for pair, d in per_pair.items():
                old = pairs.get(pair, 0.0)
                pairs[pair] = d if (np.isnan(d) or d > old) else old
        return pairs

    @property
    def failure(self) -> str:
        """The first input set and pair out of tolerance (edgecnn.parity's rule), or ""."""
        for label, per_pair in self.agreements.items():
            for pair, figures in per_pair.items():
                if figures.failure(self.tolerance):
                    return f"{pair} on {label}: {figures.failure(self.tolerance)}"
        return ""

    @property
    def scale(self) -> float:
        """The largest logit scale over the input sets."""
        return max((a.scale for per_pair in self.agreements.values() for a in per_pair.values()), default=1.0)

    @property
    def passed(self) -> bool:
        return bool(self.diffs) and not self.failure

    def summary(self) -> str:
        """One line: the worst difference per pair, and where the layers first drift apart."""
        if self.skipped:
            return f"C reference: not run ({f'op {self.refused_op}' if self.refused_op else self.skipped})"
        text = ", ".join(f"max |{pair}| = {d:.2e}" for pair, d in self.worst.items())
        text += f" (logit scale {self.scale:.3g})"
        if self.failure:
            text += f"; {self.failure}"
        drift = next((row for row in self.layers if not row.relative <= self.tolerance), None)
        if drift is not None:
            text += f"; first drift at node {drift.index} ({drift.op_type} -> {drift.output}), rel {drift.relative:.2g}"
        return text


def read_spec(model: onnx.ModelProto, where: str = "model") -> ModelSpec | None:
    """The ModelSpec in the model's metadata (checked against the graph), or None when it has none:
    the checker also takes plain ONNX models."""
    return read_model_spec(model, where) if has_model_spec(model) else None


def input_shape(model: onnx.ModelProto, spec: ModelSpec | None) -> tuple[int, ...]:
    """One sample's shape (no batch axis): the spec's, else the graph input's fixed dims."""
    if spec is not None:
        return spec.input_shape
    initializers = {t.name for t in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in initializers)
    dims = first.type.tensor_type.shape.dim[1:]
    if any(not d.HasField("dim_value") for d in dims):
        raise EdgecnnError(f"input {first.name!r} has symbolic non-batch dims and the model has no {METADATA_KEY}")
    return tuple(d.dim_value for d in dims)


def random_inputs(
    shape: tuple[int, ...], batch_sizes: tuple[int, ...] = BATCH_SIZES, dtype: str = "float32"
) -> dict[str, np.ndarray]:
    """Uniform [0, 1) float32 batches (as the exporter's parity_inputs), or uniform uint8 ones,
    seeded by batch size."""
    if dtype == "uint8":
        return {
            f"random batch {b}": np.random.default_rng(b).integers(0, 256, (b, *shape), dtype=np.uint8)
            for b in batch_sizes
        }
    return {f"random batch {b}": np.random.default_rng(b).random((b, *shape), dtype=np.float32) for b in batch_sizes}


def real_inputs(spec: ModelSpec, images: Path | None, limit: int = IMAGE_LIMIT) -> tuple[str, np.ndarray] | None:
    """Up to `limit` real images preprocessed as the runtime does, from `images` (a folder of
    image files, evenly spaced over its sorted list, or Fashion-MNIST IDX .gz) or, when not
    given, from the registered model's test data (`edgecnn.datasets.known_data`). None when there is none."""
    from edgecnn.preprocess import to_batch
    from edgecnn.sources import expand_image_paths, read_idx, read_image

    if images is None:
        images = known_data(spec.name)
        if images is None:
            return None
    idx = images if images.name.endswith("idx3-ubyte.gz") else images / IDX_FILES["test"][0]
    if idx.is_file():
        frames, where = list(read_idx(idx, ndim=(3,))[:limit]), str(idx)
    else:
        paths = expand_image_paths([images])
        picked = [paths[i] for i in np.linspace(0, len(paths) - 1, min(limit, len(paths))).round().astype(int)]
        frames, where = [read_image(p) for p in picked], str(images)
    batch = to_batch(frames, src_order="bgr", **spec.preprocess_args())
    return f"{len(frames)} real images from {where}", batch


def _ort_session(model: onnx.ModelProto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of `model` that also outputs the float32 tensors `names`."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    for name in names:
        if name not in present:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
            present.add(name)
    return probe


def layer_table(model: onnx.ModelProto, reference: ReferenceModel, x: np.ndarray) -> list[LayerRow]:
    """Every node output, onnxruntime (each intermediate made a graph output) vs the C reference."""
    values = reference.run_all(x)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = [o.name for o in probe.graph.output]
    for step in reference.steps:
        for name in step.outputs:
            if name and name not in outputs:
                dtype = onnx.helper.np_dtype_to_tensor_dtype(values[name].dtype)
                probe.graph.output.append(onnx.helper.make_tensor_value_info(name, dtype, None))
                outputs.append(name)
    got = dict(zip(outputs, _ort_session(probe).run(outputs, {reference.input_names[0]: x}), strict=True))
    rows = []
    for step in reference.steps:
        for name in step.outputs:
            if name:
                mine = values[name]
                top = float(np.max(np.abs(mine.astype(np.float64)))) if mine.size else 0.0
                rows.append(
                    LayerRow(step.index, step.op_type, name, tuple(mine.shape), max_abs_diff(got[name], mine), top)
                )
    return rows


def check_model(
    model: onnx.ModelProto | str | os.PathLike,
    keras_predict: Predict | None = None,
    images: Path | None = None,
    tolerance: float = TOLERANCE,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    image_limit: int = IMAGE_LIMIT,
    layers: bool = True,
) -> CheckReport:
    """Run onnxruntime, the C reference and (when given) Keras on the same inputs; see the module doc."""
    reference = ReferenceModel(model)
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(model)
    spec = read_spec(proto, reference.source)
    report = CheckReport(model=reference.source, tolerance=tolerance)
    inputs = random_inputs(input_shape(proto, spec), batch_sizes)
    if spec is None:
        report.notes.append(f"no {METADATA_KEY} metadata: random inputs only")
    else:
        real = real_inputs(spec, images, image_limit)
        if real is None:
            report.notes.append(
                "no real images given or found under EDGECNN_DATA or ../shared/data: random inputs only"
            )
        else:
            inputs[real[0]] = real[1]
    if keras_predict is None:
        report.notes.append("no Keras model given: onnxruntime vs C reference only")
    logits_name = logits_output(proto)
    output_name = proto.graph.output[0].name
    session = _ort_session(with_outputs(proto, [logits_name]))
    name = reference.input_names[0]
    for label, x in inputs.items():
        ort_out, ort_logits = session.run([output_name, logits_name], {name: x})
        values = reference.run_all(x)
        results = {ORT: ort_out, C_REF: values[output_name]}
        logits: dict[str, np.ndarray | None] = {ORT: ort_logits, C_REF: values[logits_name]}
        if keras_predict is not None:
            results = {KERAS: keras_predict(x), **results}
            logits[KERAS] = results[KERAS] if logits_name == output_name else None
        if spec is not None:  # compare what the user gets: probabilities (a logits graph's scores are unbounded)
            results = {key: class_probabilities(value, spec) for key, value in results.items()}
        keys = list(results)
        report.agreements[label] = {
            f"{a} vs {b}": agreement(results[a], results[b], logits[a], logits[b])
            for i, a in enumerate(keys)
            for b in keys[i + 1 :]
        }
        report.diffs[label] = {pair: figures.probabilities for pair, figures in report.agreements[label].items()}
    if layers:
        report.layer_inputs = list(inputs)[-1]
        report.layers = layer_table(proto, reference, inputs[report.layer_inputs])
    return report


def check_export(model: onnx.ModelProto, keras_predict: Predict, tolerance: float = TOLERANCE) -> CheckReport:
    """The exporter's C-reference step: outputs only (plus the layer table when it fails).

    A model using an operator or attribute the C reference refuses, found when it is
    compiled or while it runs, is not an export error: the report says so in `skipped`
    and `refused_op` ("C reference: not run (op X)") and the caller goes on.
    """
    from edgecnn.reference.model import ModelError

    try:
        report = check_model(model, keras_predict, tolerance=tolerance, layers=False)
    except ModelError as exc:
        return CheckReport(model="model", tolerance=tolerance, skipped=str(exc), refused_op=exc.op)
    if not report.passed:
        reference = ReferenceModel(model)
        shape = input_shape(model, read_spec(model))
        report.layer_inputs = "random batch 1"
        report.layers = layer_table(model, reference, random_inputs(shape, (1,))["random batch 1"])
    return report


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def format_report(report: CheckReport) -> str:
    """The report as text: notes, per-layer table, then max abs difference per pair and input set."""
    lines = [f"parity check of {report.model} (tolerance {report.tolerance:g} on the outputs)"]
    lines += [f"  note: {note}" for note in report.notes]
    if report.skipped:
        return "\n".join([*lines, f"SKIPPED: {report.skipped}"])
    if report.layers:
        lines.append(f"per-layer, onnxruntime vs C reference, on {report.layer_inputs}:")
        lines.append(f"  {'#':>3}  {'op':<12} {'output':<40} {'shape':<20} {'max|diff|':>10} {'max|C|':>10} {'rel':>9}")
        for row in report.layers:
            shape = "x".join(str(d) for d in row.shape) or "scalar"
            lines.append(
                f"  {row.index:>3}  {row.op_type:<12} {_short(row.output, 40):<40} {shape:<20} "
                f"{row.max_abs_diff:>10.3g} {row.max_abs_value:>10.3g} {row.relative:>9.2g}"
            )
    lines.append("outputs, max |difference| of the probabilities (and of the logits, where both runs have them):")
    for label, per_pair in report.agreements.items():
        cells = ", ".join(
            f"{pair} {a.probabilities:.2e}" + (f" (logits {a.logits:.2e})" if a.logits is not None else "")
            for pair, a in per_pair.items()
        )
        scale = max(a.scale for a in per_pair.values())
        lines.append(f"  {label}, logit scale {scale:.3g}: {cells}")
    verdict = "PASS" if report.passed else f"FAIL ({report.failure})"
    worst = ", ".join(f"{pair} {d:.2e}" for pair, d in report.worst.items())
    lines.append(
        f"{verdict}: worst {worst} (tolerance {report.tolerance:g} x logit scale {report.scale:.3g}, edgecnn.parity)"
    )
    return "\n".join(lines)
