"""Regenerate the bundled models: export each finished run and write its recipe.

    python -m edgecnn.models.bundle --runs runs catsdogs fmnist

For each NAME-int8: `edgecnn-export edgecnn/models/NAME.onnx --int8 -o edgecnn/models/NAME-int8.onnx`
(calibrated on the model's training data, gated on its test data), and a recipe with the
calibration, the gate's numbers and the FP32 file's SHA-256.

For each NAME: `edgecnn-export RUNS/NAME -o edgecnn/models/NAME.onnx` (parity-checked,
written atomically), then `NAME.recipe.json` from RUNS/NAME/run.json and metrics.json:
training command, data checksums and counts, seed and settings, versions, metrics,
and the SHA-256 of the checkpoint and of the ONNX file. A run that has not finished
is refused unless --allow-unfinished (the recipe then says so). Needs the [train] extra.

    python -m edgecnn.models.bundle --spec-only

rewrites only the ModelSpec inside the bundled files, from the registry (display names),
keeping every graph byte for byte, then the recipes' hashes, sizes and spec (and each
NAME-int8's record of its FP32 file's SHA-256). Deterministic: a second run changes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from edgecnn.cli import run_command
from edgecnn.errors import UserError
from edgecnn.fileio import write_text_atomically
from edgecnn.models import BUNDLED, INT8_SUFFIX

PROG = "python -m edgecnn.models.bundle"
RECIPE_FORMAT = 1


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def make_recipe(name: str, run_dir: Path, onnx_path: Path, export_argv: list[str]) -> dict[str, Any]:
    """The recipe of bundled model `name`, from its run directory and exported ONNX file."""
    import onnx

    from edgecnn.spec import METADATA_KEY, ModelSpec

    run = _read_json(run_dir / "run.json")
    if run is None:
        raise UserError(f"{run_dir}: no run.json (not a run directory from edgecnn-train)")
    metadata = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    spec = ModelSpec.from_json(metadata[METADATA_KEY])
    settings = run.get("settings", {})
    return {
        "format": RECIPE_FORMAT,
        "name": name,
        "status": run.get("status"),
        "train_command": shlex.join(run.get("command", [])),
        "export_command": shlex.join(["edgecnn-export", *export_argv]),
        "seed": settings.get("seed"),
        "settings": settings,
        "data": run.get("data"),
        "metrics": _read_json(run_dir / "metrics.json"),
        "versions": run.get("versions"),
        "checkpoint": {"file": _shown(run_dir / "model.keras"), "sha256": sha256_of(run_dir / "model.keras")},
        "onnx": {"file": onnx_path.name, "sha256": sha256_of(onnx_path), "bytes": onnx_path.stat().st_size},
        "spec": json.loads(spec.to_json()),
    }


def bundle_int8(name: str, out: Path) -> dict[str, Any]:
    """Quantise bundled FP32 model NAME (NAME-int8 minus the suffix) and return its recipe."""
    import platform

    import onnx
    import onnxruntime

    from edgecnn.spec import METADATA_KEY, ModelSpec
    from edgecnn.training.quantize import quantize_model

    fp32 = out / f"{name[: -len(INT8_SUFFIX)]}.onnx"
    onnx_path = out / f"{name}.onnx"
    report = quantize_model(fp32, onnx_path)
    if not report.passed:
        raise UserError(f"{name}: INT8 accuracy gate failed ({'; '.join(report.reasons)}); nothing written")
    metadata = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    spec = ModelSpec.from_json(metadata[METADATA_KEY])
    gate = report.gate
    return {
        "format": RECIPE_FORMAT,
        "name": name,
        "status": "finished",
        "export_command": shlex.join(["edgecnn-export", _shown(fp32), "--int8", "-o", _shown(onnx_path)]),
        "source": {"file": fp32.name, "sha256": sha256_of(fp32)},
        "calibration": {
            "method": spec.calibration_method,
            "count": spec.calibration_count,
            "images": _shown(Path(report.calibration_where)),
            "seed": 0,
        },
        "gate": {
            "images": _shown(Path(report.validation_where)),
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
        "onnx": {"file": onnx_path.name, "sha256": sha256_of(onnx_path), "bytes": onnx_path.stat().st_size},
        "spec": json.loads(spec.to_json()),
    }


def update_spec(name: str, out: Path) -> dict[str, Any]:
    """Rewrite the ModelSpec of bundled model `name` in `out` from the registry and return its
    updated recipe; the graph is kept as it is (checked). An int8 model records its FP32
    file's SHA-256, so update the FP32 model first."""
    import onnx

    from edgecnn.fileio import save_onnx_atomically
    from edgecnn.training import registry
    from edgecnn.training.quantize import read_model_spec, set_model_spec

    path = out / f"{name}.onnx"
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph.SerializeToString()
    spec = read_model_spec(model, str(path))
    spec = dataclasses.replace(spec, display_names=registry.display_names(spec.name, spec.class_names))
    recipe = _read_json(out / f"{name}.recipe.json")
    if recipe is None:
        raise UserError(f"{out / name}.recipe.json: missing; bundle {name} in full first")
    if spec.precision == "int8":
        fp32 = out / recipe["source"]["file"]
        spec = dataclasses.replace(spec, fp32_sha256=sha256_of(fp32))
        recipe["source"]["sha256"] = spec.fp32_sha256
    set_model_spec(model, spec)
    save_onnx_atomically(model, path)
    if onnx.load(str(path), load_external_data=False).graph.SerializeToString() != graph:
        raise UserError(f"{path}: the graph changed while rewriting its spec")
    recipe["onnx"].update(sha256=sha256_of(path), bytes=path.stat().st_size)
    recipe["spec"] = json.loads(spec.to_json())
    return recipe


def write_recipe(path: Path, recipe: dict[str, Any]) -> None:
    """Write a recipe as sorted, indented JSON (non-ASCII class names as they are), atomically."""
    write_text_atomically(path, json.dumps(recipe, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _shown(path: Path) -> str:
    """path relative to the working directory when it lies below it (recipes stay portable)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def bundle_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"models to bundle: {', '.join(BUNDLED)} (default: all)"
    )
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="folder of run directories (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="where NAME.onnx and NAME.recipe.json go (default: the edgecnn.models package)",
    )
    parser.add_argument(
        "--allow-unfinished",
        action="store_true",
        help="bundle the best checkpoint of a run still training (the recipe says status: training)",
    )
    parser.add_argument(
        "--spec-only",
        action="store_true",
        help="rewrite only the ModelSpec metadata of the bundled files (display names from the registry) "
        "and their recipes' hashes; the graphs stay as they are",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BUNDLED))
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}; bundled models: {', '.join(BUNDLED)}")
    if args.spec_only:
        chosen = list(args.names or BUNDLED)
        chosen += [f"{name}{INT8_SUFFIX}" for name in chosen if f"{name}{INT8_SUFFIX}" in BUNDLED]  # hash their FP32
        for name in sorted(dict.fromkeys(chosen), key=lambda n: n.endswith(INT8_SUFFIX)):
            recipe = update_spec(name, args.out)
            write_recipe(args.out / f"{name}.recipe.json", recipe)
            print(f"updated the spec of {args.out / name}.onnx (sha256 {recipe['onnx']['sha256'][:12]}…)")
        return 0
    from edgecnn.cli import export

    for name in dict.fromkeys(args.names or BUNDLED):
        if name.endswith(INT8_SUFFIX):
            write_recipe(args.out / f"{name}.recipe.json", bundle_int8(name, args.out))
            continue
        run_dir = args.runs / name
        info = _read_json(run_dir / "run.json")
        if info is None:
            raise UserError(f"{run_dir}: no run.json (train it first: edgecnn-train {name} --out {run_dir})")
        if info.get("status") != "finished" and not args.allow_unfinished:
            raise UserError(
                f"{run_dir}: run status is {info.get('status')!r}, not 'finished' "
                "(wait for it, or pass --allow-unfinished)"
            )
        onnx_path = args.out / f"{name}.onnx"
        export_argv = [str(run_dir), "-o", _shown(onnx_path)]
        if export.main(export_argv) != 0:
            return 1
        recipe = make_recipe(name, run_dir, onnx_path, export_argv)
        recipe_path = args.out / f"{name}.recipe.json"
        write_recipe(recipe_path, recipe)
        print(
            f"wrote {recipe_path} (status {recipe['status']}, metrics "
            f"{'test ' + format(recipe['metrics']['test']['accuracy'], '.4f') if recipe['metrics'] else 'none yet'})"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(PROG, lambda: bundle_command(argv))


if __name__ == "__main__":
    sys.exit(main())
