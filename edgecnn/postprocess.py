"""Graph outputs -> per-class probabilities -> top-k (label, probability)."""

from __future__ import annotations

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


def top_k(probabilities: np.ndarray, class_names: tuple[str, ...], k: int) -> list[list[tuple[str, float]]]:
    """Per row, the k most likely (label, probability), most likely first (ties: lower index first)."""
    k = max(1, min(k, probabilities.shape[1]))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(class_names[j], float(row[j])) for j in idx] for row, idx in zip(probabilities, order, strict=True)]
