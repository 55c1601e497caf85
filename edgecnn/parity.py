"""What "the same model" means: the settings and the rule every parity check of an exported model shares.

The exporter (edgecnn.training.export), the three-way checker (edgecnn.reference.check),
the INT8 step check (edgecnn.reference.quant_check), edgecnn-export's defaults and the
tests all read them here.

The rule is scale-aware. Two float32 computations of the same network differ by rounding,
and rounding grows with the size of the numbers: a network whose logits reach 40 differs
in them by about 40 times what one with logits near 1 does, and softmax passes that on to
the probabilities. So, with `scale` = max(1, max |logits|) of the reference run:
- logits (the graph's pre-activation output, where both sides have it) agree when
  max |difference| <= LOGITS_TOLERANCE * scale;
- probabilities agree when max |difference| <= tolerance * scale. For the usual model,
  logits within a few units, that is the plain absolute tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

TOLERANCE = 1e-5  # probabilities: max |difference| / max(1, max |logits|)
# logits: max |difference| / max(1, max |logits|). Looser than the probabilities' because the
# logits carry the rounding of every layer undamped (EfficientNet-B0: 1.05e-5 Keras vs
# onnxruntime), the C reference's per-layer rule; one kernel changed by 1% moves them by 1e-3.
LOGITS_TOLERANCE = 1e-4
BATCH_SIZES = (1, 8)  # the batch sizes parity is checked at (a dynamic batch axis must work for both)
OPSET = 17  # the ONNX opset the exporter writes by default (onnxruntime >= 1.14 runs it)
MIN_OPSET = 13  # the first opset with every op these models need in its current form (Softmax on any axis)
OUTPUT_ACTIVATIONS = ("Softmax", "Sigmoid")  # graph outputs whose input is the logits


def logits_output(model: onnx.ModelProto) -> str:
    """The name of the graph's logits: the input of a final Softmax/Sigmoid, else the output itself."""
    output = model.graph.output[0].name
    producer = next((node for node in model.graph.node if output in node.output), None)
    return producer.input[0] if producer is not None and producer.op_type in OUTPUT_ACTIVATIONS else output


def logit_scale(logits: np.ndarray) -> float:
    """max(1, max |logits|): what the tolerance is relative to."""
    values = np.abs(np.asarray(logits, dtype=np.float64))
    return max(1.0, float(np.nanmax(values))) if values.size else 1.0


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| in float64; inf when the shapes differ, NaN when either holds NaN."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


@dataclass(frozen=True)
class Agreement:
    """How two runs of one model compare: both figures, and the scale they are judged at."""

    probabilities: float  # max |difference| of the class probabilities
    logits: float | None  # max |difference| of the logits, when both runs have them
    scale: float  # max(1, max |logits|) of the reference run

    def failure(self, tolerance: float = TOLERANCE) -> str:
        """Which figure is out of tolerance and by how much, or "" when both are within."""
        logits_allowed = LOGITS_TOLERANCE * self.scale
        if self.logits is not None and not self.logits <= logits_allowed:
            return (
                f"logits differ by {self.logits:.3g} > {logits_allowed:.3g} "
                f"({LOGITS_TOLERANCE:g} x logit scale {self.scale:.3g})"
            )
        allowed = tolerance * self.scale
        if not self.probabilities <= allowed:
            return (
                f"probabilities differ by {self.probabilities:.3g} > {allowed:.3g} "
                f"({tolerance:g} x logit scale {self.scale:.3g})"
            )
        return ""


def agreement(
    probabilities: np.ndarray,
    reference_probabilities: np.ndarray,
    logits: np.ndarray | None,
    reference_logits: np.ndarray | None,
) -> Agreement:
    """Compare a run with a reference run (logits None where a run has only probabilities; the
    scale then comes from whichever run has logits)."""
    known = reference_logits if reference_logits is not None else logits
    return Agreement(
        probabilities=max_abs_diff(probabilities, reference_probabilities),
        logits=None if logits is None or reference_logits is None else max_abs_diff(logits, reference_logits),
        scale=logit_scale(known) if known is not None else 1.0,
    )
