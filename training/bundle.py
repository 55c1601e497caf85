"""Regenerate the bundled models (edgecnn/models): export or quantise each one, then write its recipe.

For NAME: export RUNS/NAME (`export_model`: parity-checked, written atomically) to
OUT/NAME.onnx, then `NAME.recipe.json` from RUNS/NAME/run.json and metrics.json:
training command, data checksums and counts, seed and settings, the optimizer and loss the
checkpoint was trained with, versions, metrics, and the SHA-256 of the
checkpoint and of the ONNX file. A run that has not finished is
refused unless `allow_unfinished` (the recipe then says so). Needs TensorFlow.

For NAME-int8: quantise OUT/NAME.onnx (`quantize_model`: calibrated on the model's
training data, gated on its test data) to OUT/NAME-int8.onnx, and a recipe with the
calibration, the gate's numbers and the FP32 file's SHA-256. Needs no TensorFlow.

`update_spec` rewrites only the ModelSpec inside a bundled file, from the registry (display
names), keeping the graph byte for byte, and the recipe's hashes, sizes and spec (an INT8
model's record of its FP32 file's SHA-256 too). Deterministic: a second run changes nothing.

The command is `python -m edgecnn.cli.bundle`.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shlex
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.errors import EdgecnnError, first_line
from edgecnn.fileio import sha256_file, write_json_atomically
from edgecnn.models import INT8_SUFFIX

if TYPE_CHECKING:
    from edgecnn.training.export import ExportReport

RECIPE_FORMAT = 1


def read_json(path: Path) -> Any:
    """The JSON in `path`, None when there is no such file; EdgecnnError when it is not JSON."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise EdgecnnError(f"{path}: not valid JSON ({exc})") from None


def shown(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (recipes stay portable)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def checkpoint_compile_config(checkpoint: Path) -> dict[str, Any]:
    """The optimizer and loss a .keras checkpoint was trained with (from its config.json)."""
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            config = json.loads(archive.read("config.json"))["compile_config"]
            return {"optimizer": config["optimizer"], "loss": config["loss"]}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise EdgecnnError(f"{checkpoint}: no compile config ({first_line(exc)})") from None


def bundle_fp32(
    name: str, run_dir: Path, out: Path, allow_unfinished: bool = False
) -> tuple[ExportReport, dict[str, Any]]:
    """Export run `run_dir` to OUT/NAME.onnx and write OUT/NAME.recipe.json; returns the
    export report and the recipe."""
    import onnx

    from edgecnn.spec import read_model_spec
    from edgecnn.training.export import export_model

    run = read_json(run_dir / "run.json")
    if run is None:
        raise EdgecnnError(f"{run_dir}: no run.json (not a finished edgecnn-train run of {name})")
    if run.get("status") != "finished" and not allow_unfinished:
        raise EdgecnnError(
            f"{run_dir}: run status is {run.get('status')!r}, not 'finished' (wait for it, or allow an unfinished run)"
        )
    onnx_path = out / f"{name}.onnx"
    report = export_model(run_dir, onnx_path)
    spec = read_model_spec(onnx.load(str(onnx_path), load_external_data=False), str(onnx_path))
    settings = {key: value for key, value in run.get("settings", {}).items() if key != "compile"}
    recipe = {
        "format": RECIPE_FORMAT,
        "name": name,
        "status": run.get("status"),
        "train_command": shlex.join(run.get("command", [])),
        # what export_model(run_dir, onnx_path) with its defaults is on the command line
        "export_command": shlex.join(["edgecnn-export", str(run_dir), "-o", shown(onnx_path)]),
        "seed": settings.get("seed"),
        "settings": settings,
        "compile": checkpoint_compile_config(run_dir / "model.keras"),
        "data": run.get("data"),
        "metrics": read_json(run_dir / "metrics.json"),
        "versions": run.get("versions"),
        "checkpoint": {"file": shown(run_dir / "model.keras"), "sha256": sha256_file(run_dir / "model.keras")},
        "onnx": {"file": onnx_path.name, "sha256": sha256_file(onnx_path), "bytes": onnx_path.stat().st_size},
        "spec": json.loads(spec.to_json()),
    }
    write_json_atomically(out / f"{name}.recipe.json", recipe)
    return report, recipe


def bundle_int8(name: str, out: Path) -> dict[str, Any]:
    """Quantise OUT/BASE.onnx (NAME minus the -int8 suffix) to OUT/NAME.onnx and write
    OUT/NAME.recipe.json; returns the recipe. EdgecnnError when the accuracy gate refuses."""
    import onnx
    import onnxruntime

    from edgecnn.spec import read_model_spec
    from edgecnn.training.quantize import CALIBRATION_SEED, quantize_model

    fp32 = out / f"{name.removesuffix(INT8_SUFFIX)}.onnx"
    onnx_path = out / f"{name}.onnx"
    report = quantize_model(fp32, onnx_path)
    if not report.passed:
        raise EdgecnnError(f"{name}: INT8 accuracy gate failed ({'; '.join(report.reasons)}); nothing written")
    spec = read_model_spec(onnx.load(str(onnx_path), load_external_data=False), str(onnx_path))
    gate = report.gate
    recipe = {
        "format": RECIPE_FORMAT,
        "name": name,
        "status": "finished",
        "export_command": shlex.join(["edgecnn-export", shown(fp32), "--int8", "-o", shown(onnx_path)]),
        "source": {"file": fp32.name, "sha256": sha256_file(fp32)},
        "calibration": {
            "method": spec.calibration_method,
            "count": spec.calibration_count,
            "images": shown(Path(report.calibration_where)),
            "seed": CALIBRATION_SEED,
        },
        "gate": {
            "images": shown(Path(report.validation_where)),
            "count": gate.count,
            "fp32_accuracy": gate.baseline_accuracy,
            "int8_accuracy": gate.accuracy,
            "top1_agreement": gate.agreement,
            "max_abs_dp": gate.max_abs_dp,
        },
        "graph": {"changes": report.changes, "onnxruntime_ops": report.ops},
        "versions": {
            "onnxruntime": onnxruntime.__version__,
            "onnx": onnx.__version__,
            "python": platform.python_version(),
        },
        "onnx": {"file": onnx_path.name, "sha256": sha256_file(onnx_path), "bytes": onnx_path.stat().st_size},
        "spec": json.loads(spec.to_json()),
    }
    write_json_atomically(out / f"{name}.recipe.json", recipe)
    return recipe


def update_spec(name: str, out: Path) -> dict[str, Any]:
    """Rewrite the ModelSpec of bundled model `name` in `out` from the registry and its recipe;
    returns the recipe. The graph is kept as it is (checked). An INT8 model records its FP32
    file's SHA-256, so update the FP32 model first."""
    import onnx

    from edgecnn.fileio import save_onnx_atomically
    from edgecnn.spec import read_model_spec, write_model_spec
    from edgecnn.training import registry

    path = out / f"{name}.onnx"
    recipe = read_json(out / f"{name}.recipe.json")
    if recipe is None:
        raise EdgecnnError(f"{out / name}.recipe.json: missing; bundle {name} in full first")
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph.SerializeToString()
    spec = read_model_spec(model, str(path))
    spec = dataclasses.replace(spec, display_names=registry.display_names(spec.name, spec.class_names))
    if spec.precision == "int8":
        spec = dataclasses.replace(spec, fp32_sha256=sha256_file(out / recipe["source"]["file"]))
        recipe["source"]["sha256"] = spec.fp32_sha256
    write_model_spec(model, spec)
    save_onnx_atomically(model, path)
    if onnx.load(str(path), load_external_data=False).graph.SerializeToString() != graph:
        raise EdgecnnError(f"{path}: the graph changed while rewriting its spec")
    recipe["onnx"].update(sha256=sha256_file(path), bytes=path.stat().st_size)
    recipe["spec"] = json.loads(spec.to_json())
    write_json_atomically(out / f"{name}.recipe.json", recipe)
    return recipe
