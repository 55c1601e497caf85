"""The documentation runs as written: README.md and every page of docs/.

Every ```python block runs from the repository root (`python fragment`: an excerpt that
needs a camera, a Keras model or data edgecnn does not have, is only compiled). Every
```bash block passes `bash -n`, and each edgecnn command in it parses with that command's
own argument parser. Each command's page holds its `--help` text, compared here with the
parser's; `python tests/test_docs.py --write-help` rewrites those blocks after a change.
"""

import argparse
import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(python|bash)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
HELP_BLOCK = re.compile(r"(<!-- help: (?P<command>[\w-]+(?: [\w-]+)?) -->\n```text\n)(?P<text>.*?)(^```$)", re.M | re.S)
HELP_COLUMNS = "100"
COMMANDS = ("edgecnn-train", "edgecnn-export", "edgecnn-infer", "edgecnn-bench")


def blocks(language: str) -> list[tuple[str, str, str]]:
    """(info string after the language, code, "FILE:LINE") of every `language` block of the docs."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            if match.group(1) == language:
                where = f"{path.relative_to(REPO)}:{text.count(chr(10), 0, match.start()) + 1}"
                found.append((match.group(2).strip(), match.group(3), where))
    return found


def parser_of(command: str, args: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The argument parser of an edgecnn command line, and the arguments it parses."""
    from edgecnn.cli import bench, export, infer, train

    if command == "edgecnn-train":
        if args[:1] == ["make-subset"]:
            return train.subset_parser(), args[1:]
        return train.train_parser(), args
    return {"edgecnn-export": export, "edgecnn-infer": infer, "edgecnn-bench": bench}[command].build_parser(), args


def command_lines(code: str) -> list[list[str]]:
    """Every edgecnn command in a bash block, as its words (comments and `&&` chains split)."""
    lines = []
    for line in code.replace("\\\n", " ").splitlines():
        for part in re.split(r"&&|\|\||;|\|", line.split(" #")[0]):
            words = shlex.split(part, comments=True)
            while words and ("=" in words[0] and not words[0].startswith("-")):
                words = words[1:]  # VAR=value before the command
            if words and Path(words[0]).name in COMMANDS:
                # @LIST (arguments read from a file the example's run would write) is not opened here
                lines.append([Path(words[0]).name, *(word for word in words[1:] if word != ">" and word[:1] != "@")])
    return lines


def test_the_readme_has_a_runnable_python_example():
    assert any(info == "" and "edgecnn.load(" in code for info, code, where in blocks("python") if "README" in where)


@pytest.mark.parametrize("info, code, where", blocks("python"), ids=[where for *_, where in blocks("python")])
def test_python_block(info, code, where):
    compile(code, where, "exec")
    if info == "fragment":
        return
    assert info == "", f"{where}: unknown info string {info!r} (python or python fragment)"
    if "../shared/data" in code and not (REPO.parent / "shared" / "data").is_dir():
        pytest.skip(f"{where} reads ../shared/data, which is not beside this checkout")
    if "edgecnn.ray" in code and importlib.util.find_spec("ray") is None:
        pytest.skip(f"{where} needs the ray extra (pip install -e '.[ray]')")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{where} failed:\n{result.stderr}"
    assert result.stdout.strip(), f"{where} printed nothing"


@pytest.mark.parametrize("info, code, where", blocks("bash"), ids=[where for *_, where in blocks("bash")])
def test_bash_block(info, code, where):
    checked = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True)
    assert checked.returncode == 0, f"{where}: {checked.stderr}"
    for words in command_lines(code):
        parser, args = parser_of(words[0], words[1:])
        failure = io.StringIO()
        with contextlib.redirect_stderr(failure), contextlib.redirect_stdout(io.StringIO()):
            try:
                parser.parse_args(args)
            except SystemExit as exc:
                assert exc.code == 0, f"{where}: {shlex.join(words)}: {failure.getvalue().strip()}"


def test_the_docs_show_every_command_in_a_bash_block():
    shown = {words[0] for _, code, _ in blocks("bash") for words in command_lines(code)}
    assert shown == set(COMMANDS)


def help_text(command: str) -> str:
    """`command --help` as a terminal HELP_COLUMNS wide shows it."""
    words = command.split()
    parser, _ = parser_of(words[0], words[1:])
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        return parser.format_help()
    finally:
        del os.environ["COLUMNS"]


def help_blocks() -> list[tuple[Path, str, str]]:
    return [
        (path, match.group("command"), match.group("text"))
        for path in DOCS
        for match in HELP_BLOCK.finditer(path.read_text())
    ]


def test_every_command_has_its_help_on_its_page():
    assert {command for _, command, _ in help_blocks()} == {*COMMANDS, "edgecnn-train make-subset"}


@pytest.mark.parametrize("path, command, text", help_blocks(), ids=[command for _, command, _ in help_blocks()])
def test_help_on_the_page_is_the_commands_help(path, command, text):
    assert text == help_text(command), (
        f"{path.relative_to(REPO)} shows an old `{command} --help`: run python tests/test_docs.py --write-help"
    )


def write_help() -> None:
    """Rewrite every help block of the docs from the parsers."""
    for path in DOCS:
        text = path.read_text()
        new = HELP_BLOCK.sub(lambda m: m.group(1) + help_text(m.group("command")) + m.group(4), text)
        if new != text:
            path.write_text(new)
            print(f"rewrote {path.relative_to(REPO)}")


if __name__ == "__main__" and sys.argv[1:] == ["--write-help"]:
    sys.path.insert(0, str(REPO))
    write_help()
