"""Graph outputs -> per-class probabilities -> top-k Predictions (label, probability, index, display label)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgecnn.spec import ModelSpec


def class_probabilities(outputs: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(N, K) probabilities, one column per class name.

    A softmax graph already gives them; a sigmoid graph gives P(class_names[1]) as one
    column, which becomes [1 - p, p]. A logits graph gives scores: softmax over K
    columns, or one column for two classes, which goes through the sigmoid first.
    """
    outputs = np.asarray(outputs, dtype=np.float32)
    if spec.output_activation == "logits":
        outputs = outputs.reshape(len(outputs), -1)
        if outputs.shape[1] == 1 and len(spec.class_names) == 2:
            outputs = (1.0 / (1.0 + np.exp(-outputs.astype(np.float64)))).astype(np.float32)
            return np.concatenate([1.0 - outputs, outputs], axis=1)
        shifted = np.exp(outputs.astype(np.float64) - outputs.max(axis=1, keepdims=True))
        outputs = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
    if spec.output_activation == "sigmoid":
        p = outputs.reshape(len(outputs), -1)
        if p.shape[1] != 1:
            raise ValueError(f"a sigmoid model must output one value per image, got shape {outputs.shape}")
        return np.concatenate([1.0 - p, p], axis=1)
    if outputs.ndim != 2 or outputs.shape[1] != len(spec.class_names):
        raise ValueError(f"model output shape {outputs.shape} does not match {len(spec.class_names)} class names")
    return outputs


@dataclass(frozen=True, slots=True)
class Prediction:
    """One class of one image: its name, its probability, its index in the model's class names, and
    `display_label`, the name people read (the class name in the language the model was loaded with;
    `label` itself when none was chosen or the model has no names in it)."""

    label: str
    probability: float
    index: int
    display_label: str = ""

    def __post_init__(self) -> None:
        if not self.display_label:
            object.__setattr__(self, "display_label", self.label)


def top_k(
    probabilities: np.ndarray, class_names: Sequence[str], k: int, display_labels: Sequence[str] | None = None
) -> list[list[Prediction]]:
    """Per row, the k most likely classes, most likely first (ties: lower index first); `display_labels`
    (in class_names order) gives each its display_label."""
    k = max(1, min(k, probabilities.shape[1]))
    shown = class_names if display_labels is None else display_labels
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [
        [Prediction(class_names[j], float(row[j]), int(j), shown[j]) for j in idx]
        for row, idx in zip(probabilities, order, strict=True)
    ]
