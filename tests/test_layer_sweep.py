"""The layer sweep: every case of tests/layers.py goes the user's whole way (edgecnn-export,
the three-way check with its per-layer table, then --int8 and the INT8 check where it applies)
and ends in one of two states: checked, with its parity numbers, or refused in one line that
names the Keras layer. docs/layers.md is the table this test computes; run it with
EDGECNN_WRITE_LAYER_TABLE=1 to rewrite the table after a change.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras
from layers import CASES, CLASSES, SIZE, LayerCase, classifier
from zoo import calibrate

from edgecnn.cli import export as export_cli
from edgecnn.errors import EdgecnnError, first_line
from edgecnn.parity import TOLERANCE
from edgecnn.reference.check import check_model
from edgecnn.training.export import keras_scale_of

pytestmark = pytest.mark.slow  # about 90 small models exported, checked and quantised: a few minutes
TABLE = Path(__file__).resolve().parents[1] / "docs" / "layers.md"
BEGIN, END = "<!-- sweep: begin -->", "<!-- sweep: end -->"
IMAGES_PER_CLASS = 12


@dataclass(frozen=True)
class Row:
    """What happened to one case."""

    case: LayerCase
    status: str  # "checked" or "refused"
    ops: tuple[str, ...] = ()
    parity: str = ""  # worst |difference| per pair
    int8: str = ""
    reason: str = ""

    def markdown(self) -> str:
        cells = [f"`{self.case.name}`", self.status, " ".join(self.ops), self.parity, self.int8, self.reason]
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def images(folder: Path) -> Path:
    """IMAGES_PER_CLASS random SIZE x SIZE photos per class folder (the INT8 step's labelled images)."""
    import cv2

    rng = np.random.default_rng(0)
    for name in CLASSES:
        (folder / name).mkdir(parents=True)
        for i in range(IMAGES_PER_CLASS):
            smooth = cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (SIZE, SIZE))
            cv2.imwrite(str(folder / name / f"{i}.png"), smooth)
    return folder


def sweep_case(index: int, case: LayerCase, folder: Path, photos: Path) -> Row:
    """Export, check and (where it applies) quantise one case through the commands a user runs."""
    import onnx

    from edgecnn.reference.quant_check import check_quantized
    from edgecnn.training.quantize import quantize_model

    keras.backend.clear_session()  # layer names ("conv2d", not "conv2d_57") whatever ran before
    keras.utils.set_random_seed(index)
    model = calibrate(classifier(case))
    model.save(folder / "model.keras")
    out = folder / "model.onnx"
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        code = export_cli.main([str(folder / "model.keras"), "-o", str(out), "--class-names", ",".join(CLASSES)])
    if code != 0:
        lines = stderr.getvalue().strip().splitlines()
        assert code == 2 and len(lines) == 1 and not out.exists(), stderr.getvalue()[-2000:]
        return Row(case, "refused", reason=lines[0].removeprefix("edgecnn-export: error: "))
    scale = np.float32(keras_scale_of(model))
    report = check_model(out, lambda x: np.asarray(model(x * scale, training=False)), images=photos)
    assert report.passed and not report.skipped, f"{case.name}: {report.summary()}"
    ops = tuple(sorted({node.op_type for node in onnx.load(str(out)).graph.node}))
    parity = ", ".join(f"{d:.1e}" for d in report.worst.values())
    int8 = "n/a"
    if case.int8:  # the gate's thresholds off: random weights say nothing about accuracy
        try:
            quantized = quantize_model(
                out,
                folder / "int8.onnx",
                calibrate=photos,
                validate=photos,
                count=16,
                min_agreement=0.0,
                max_accuracy_drop=1.0,
            )
        except Exception as exc:  # noqa: BLE001  (what edgecnn-export --int8 prints as its one line)
            assert isinstance(exc, EdgecnnError) or type(exc).__module__.startswith("onnxruntime"), repr(exc)
            reason = re.sub(r"/tmp/\S+/", "", first_line(exc))  # the quantiser's temporary folder
            return Row(case, "checked", ops, parity, f"refused: {reason}")
        int8_report = check_quantized(quantized.path, images=photos)
        assert int8_report.passed, f"{case.name} INT8: {int8_report.format()}"
        int8 = f"checked, agreement {quantized.gate.agreement:.2f}"
    return Row(case, "checked", ops, parity, int8)


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[Row]:
    photos = images(tmp_path_factory.mktemp("photos"))
    return [sweep_case(i, case, tmp_path_factory.mktemp(f"case{i}"), photos) for i, case in enumerate(CASES)]


def table(rows: list[Row]) -> str:
    counts = {status: sum(row.status == status for row in rows) for status in ("checked", "refused")}
    lines = [
        BEGIN,
        f"{len(rows)} cases: {counts['checked']} exported and checked, {counts['refused']} refused by name.",
        "",
        "| case | status | ONNX ops | parity (Keras–ORT, Keras–C, ORT–C) | INT8 | why refused |",
        "|---|---|---|---|---|---|",
        *(row.markdown() for row in rows),
        END,
    ]
    return "\n".join(lines)


def _what_is_claimed(block: str) -> list[tuple[str, ...]]:
    """Per row: case, status, ops and reason (the measured numbers vary with the machine)."""
    cells = [line.split(" | ") for line in block.splitlines() if line.startswith("| `")]
    return [(c[0], c[1], c[2], c[5]) for c in cells]


def test_every_case_is_checked_or_refused_naming_its_layer(rows):
    for row in rows:
        if row.status == "refused":
            assert re.search(r"\w+ \(\w+[^)]*\)", row.reason), f"{row.case.name}: names no layer: {row.reason}"
        else:
            assert all(float(d) <= TOLERANCE for d in row.parity.split(", ")), row


def test_the_published_table_is_what_the_sweep_measures(rows):
    text = TABLE.read_text(encoding="utf-8")
    begin, end = text.index(BEGIN), text.index(END) + len(END)
    measured = table(rows)
    if os.environ.get("EDGECNN_WRITE_LAYER_TABLE") == "1":
        TABLE.write_text(text[:begin] + measured + text[end:], encoding="utf-8")
        text = TABLE.read_text(encoding="utf-8")
        begin, end = text.index(BEGIN), text.index(END) + len(END)
    assert _what_is_claimed(text[begin:end]) == _what_is_claimed(measured), (
        "docs/layers.md is stale: rerun this test with EDGECNN_WRITE_LAYER_TABLE=1"
    )
