"""The package's floors: imports point down (cli -> runtime and training -> spec and kernels), never up."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

# Package directory -> module name prefix (setuptools' package-dir mapping).
PACKAGES = {REPO / "edgecnn": "edgecnn", REPO / "training": "edgecnn.training"}


def imports_of(path: Path, module: str) -> set[str]:
    """Every module `path` imports, wherever the import stands (functions, TYPE_CHECKING blocks)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def modules() -> dict[str, Path]:
    result = {}
    for folder, prefix in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            result[".".join((prefix, *parts)).removesuffix(".__init__")] = path
    return result


def below(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def upper_floors(module: str) -> tuple[str, ...]:
    """The packages `module` must not import: the command-line layer, and for the runtime also training."""
    if below(module, "edgecnn.cli"):
        return ()
    if below(module, "edgecnn.training"):
        return ("edgecnn.cli",)
    return ("edgecnn.cli", "edgecnn.training")


def test_runtime_and_training_never_import_upward():
    found = modules()
    assert {"edgecnn.training.export", "edgecnn.session", "edgecnn.cli.infer"} <= set(found)
    upward = [
        f"{module} imports {name}"
        for module, path in sorted(found.items())
        for name in sorted(imports_of(path, module))
        if any(below(name, floor) for floor in upper_floors(module))
    ]
    assert not upward, upward


def test_the_import_scan_sees_relative_and_nested_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from ..cli import infer\n    import edgecnn.training.export\n")
    assert {"edgecnn.cli", "edgecnn.cli.infer", "edgecnn.training.export"} <= imports_of(source, "edgecnn.models.m")
