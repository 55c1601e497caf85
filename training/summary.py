"""The model as the run directory describes it: model.txt (the Keras summary plus
multiply-accumulates per image) and model.png (the Keras diagram with shapes)."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from unittest import mock

import keras

from edgecnn.fileio import atomic_output, write_text_atomically

SUMMARY_FILE = "model.txt"
DIAGRAM_FILE = "model.png"
SUMMARY_COLUMNS = 120  # width of the summary table
# Layers whose multiply-accumulates are counted; the others (pooling, normalisation,
# activations, merges) cost far less and are left out.
CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)


def layer_macs(layer: keras.layers.Layer) -> int | None:
    """Multiply-accumulates of one call on one image, or None for a layer that is not counted.

    Conv: output positions x filters x kernel area x input channels / groups.
    Depthwise: output positions x input channels x depth multiplier x kernel area.
    Separable: that depthwise part plus a 1x1 conv from its channels to the filters.
    Dense: positions (1 for a flat input) x input units x units.
    """
    if not isinstance(layer, (*CONVOLUTIONS, *DEPTHWISE, *SEPARABLE, keras.layers.Dense)):
        return None
    out_shape = tuple(layer.output.shape[1:])
    in_channels = int(layer.input.shape[-1])
    positions = math.prod(out_shape[:-1])
    if isinstance(layer, keras.layers.Dense):
        return positions * in_channels * layer.units
    kernel_area = math.prod(layer.kernel_size)
    if isinstance(layer, CONVOLUTIONS):
        return positions * layer.filters * kernel_area * in_channels // layer.groups
    depthwise = positions * in_channels * layer.depth_multiplier * kernel_area
    if isinstance(layer, DEPTHWISE):
        return depthwise
    return depthwise + positions * in_channels * layer.depth_multiplier * layer.filters


def mac_rows(model: keras.Model, prefix: str = "") -> list[tuple[str, str, tuple, int]]:
    """(layer path, layer type, output shape without the batch, MACs) of every counted layer,
    nested models included ("augmentation/random_flip")."""
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            rows += mac_rows(layer, f"{prefix}{layer.name}/")
            continue
        macs = layer_macs(layer)
        if macs is not None:
            rows.append((prefix + layer.name, type(layer).__name__, tuple(layer.output.shape[1:]), macs))
    return rows


def keras_summary(model: keras.Model) -> str:
    """`model.summary()` as text, nested models expanded, SUMMARY_COLUMNS wide."""
    lines: list[str] = []
    # Keras draws the table with rich, whose console is as wide as the terminal (80 columns
    # without one) and crops wider tables; COLUMNS sets that width.
    with mock.patch.dict(os.environ, {"COLUMNS": str(SUMMARY_COLUMNS)}):
        model.summary(print_fn=lambda text, **_: lines.append(text), expand_nested=True, line_length=SUMMARY_COLUMNS)
    return "\n".join(lines).rstrip() + "\n"


def summary_text(model: keras.Model) -> str:
    """The Keras summary followed by the table of multiply-accumulates per image and their total."""
    rows = mac_rows(model)
    total = sum(macs for *_, macs in rows)
    name_width = max([len("layer"), *(len(r[0]) for r in rows)])
    type_width = max([len("type"), *(len(r[1]) for r in rows)])
    table = [
        "",
        "Multiply-accumulates per image (Conv, DepthwiseConv, SeparableConv and Dense layers; "
        "pooling, normalisation, activations and merges are not counted):",
        f"  {'layer':<{name_width}}  {'type':<{type_width}}  {'output shape':<18}  {'MACs':>15}",
    ]
    for name, kind, shape, macs in rows:
        shown = "(" + ", ".join(str(d) for d in shape) + ")"
        table.append(f"  {name:<{name_width}}  {kind:<{type_width}}  {shown:<18}  {macs:>15,}")
    table.append(f" Total MACs per image: {total:,} ({total / 1e6:.2f} M)")
    return keras_summary(model) + "\n".join(table) + "\n"


def diagram_problem() -> str | None:
    """None when keras.utils.plot_model can draw, else what is missing (one phrase)."""
    try:
        import pydot  # noqa: F401
    except ImportError:
        return "pydot is not installed (pip install pydot)"
    if shutil.which("dot") is None:
        return "Graphviz's dot program is not installed (apt-get install graphviz)"
    return None


def write_model_files(model: keras.Model, out_dir: Path) -> str | None:
    """Write SUMMARY_FILE and, when Graphviz is there, DIAGRAM_FILE into `out_dir` (atomically);
    returns why the diagram was skipped, or None."""
    write_text_atomically(out_dir / SUMMARY_FILE, summary_text(model))
    problem = diagram_problem()
    if problem is not None:
        return f"{DIAGRAM_FILE} skipped: {problem}"
    with atomic_output(out_dir / DIAGRAM_FILE) as temp:
        keras.utils.plot_model(model, to_file=str(temp), show_shapes=True, show_layer_names=True, dpi=96)
    return None
