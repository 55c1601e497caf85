"""docs/troubleshooting.md lists every error message edgecnn's code can raise, and no message it no longer has.

The source is read with `ast`, never imported. Each error call (EdgecnnError, argparse.ArgumentTypeError,
parser.error) gives a template: its message's literal text with every run-time value (an f-string
field, a non-literal operand of `+`) written as `{…}`.
A message with no literal text at all (`EdgecnnError(str(exc))`) is passed on from elsewhere; its
template is then the place, `path:function`, which the catalogue lists in a section of its own.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = Path("docs/troubleshooting.md")
SOURCE_FOLDERS = ("edgecnn", "training")
ERROR_TYPES = ("EdgecnnError", "ArgumentTypeError")  # called by name or as argparse.ArgumentTypeError
VALUE = "{…}"
ENTRY = re.compile(r"^- `([^`]+)`")  # a catalogue entry: a list item that opens with its template
FEWEST_SITES = 150  # the code has about 200; far fewer means the scanner broke, not the code


@dataclass(frozen=True)
class Site:
    """One call in the source that builds a user-facing error message."""

    path: str
    line: int
    template: str


def template_of(node: ast.expr) -> str:
    """The message an expression builds, each value only known at run time written as {…}."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(template_of(part) if isinstance(part, ast.Constant) else VALUE for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return template_of(node.left) + template_of(node.right)
    return VALUE


def is_error_call(node: ast.Call) -> bool:
    """EdgecnnError(...), ArgumentTypeError(...) or parser.error(...)."""
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in ERROR_TYPES
    if isinstance(func, ast.Attribute):
        if func.attr in ERROR_TYPES:
            return True
        return func.attr == "error" and isinstance(func.value, ast.Name) and func.value.id.endswith("parser")
    return False


def message_argument(call: ast.Call) -> ast.expr | None:
    """The message: the first positional argument, or the `reason` or `message` keyword."""
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg in ("reason", "message")), None)


def sites_in(tree: ast.Module, path: str) -> list[Site]:
    """The error calls of one module, each with its template (its place for a passed-on message)."""
    found = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = (*scope, node.name)
        if isinstance(node, ast.Call) and is_error_call(node):
            message = message_argument(node)
            template = VALUE if message is None else template_of(message)
            if not template.replace(VALUE, "").strip():
                template = f"{path}:{'.'.join(scope) or '<module>'}"
            found.append(Site(path, node.lineno, template))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(tree, ())
    return found


def scan_sources(root: Path) -> list[Site]:
    """Every error call under root's edgecnn/ and training/."""
    sites = []
    for folder in SOURCE_FOLDERS:
        for file in sorted((root / folder).rglob("*.py")):
            path = file.relative_to(root).as_posix()
            sites.extend(sites_in(ast.parse(file.read_text(encoding="utf-8"), path), path))
    return sites


def read_catalogue(root: Path) -> list[tuple[int, str]]:
    """The catalogue's entries as (line number, template)."""
    lines = (root / CATALOGUE).read_text(encoding="utf-8").splitlines()
    return [(number, match[1]) for number, line in enumerate(lines, 1) if (match := ENTRY.match(line))]


def undocumented(root: Path) -> list[str]:
    """`path:line  template` for each error call whose template the catalogue lacks."""
    documented = {template for _, template in read_catalogue(root)}
    return [f"{s.path}:{s.line}  {s.template}" for s in scan_sources(root) if s.template not in documented]


def stale(root: Path) -> list[str]:
    """`docs/troubleshooting.md:line  template` for each catalogue entry that no error call in the code has."""
    in_code = {site.template for site in scan_sources(root)}
    return [f"{CATALOGUE}:{number}  {t}" for number, t in read_catalogue(root) if t not in in_code]


def test_the_scanner_finds_the_error_calls():
    sites = scan_sources(ROOT)
    assert len(sites) >= FEWEST_SITES, f"found only {len(sites)} error calls; is the scanner still finding them?"


def test_every_error_message_is_in_the_catalogue():
    missing = undocumented(ROOT)
    assert not missing, (
        f"{len(missing)} error message(s) not in {CATALOGUE}: document each there as a line "
        f"'- `TEMPLATE` — cause; what to do' ({VALUE} for each value known only at run time; "
        "a message passed on from elsewhere is listed by its path:function):\n  " + "\n  ".join(missing)
    )


def test_every_catalogue_entry_is_still_in_the_code():
    gone = stale(ROOT)
    assert not gone, (
        f"{len(gone)} entr(y/ies) of {CATALOGUE} match no error message in the code (reworded or removed? "
        "update or delete them; a list item opening with a code span is an entry):\n  " + "\n  ".join(gone)
    )


def test_each_message_is_documented_once():
    twice = [t for t, count in Counter(t for _, t in read_catalogue(ROOT)).items() if count > 1]
    assert not twice, f"documented more than once in {CATALOGUE}: {twice}"
