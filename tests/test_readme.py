"""README's Python snippets run as written: every ```python block, from the repository root.

A block whose info string is `python fragment` (an excerpt that needs a camera, a
Keras model or data edgecnn does not have) is only compiled.
"""

import re
import subprocess
import sys

import pytest
from conftest import REPO

BLOCK = re.compile(r"^```(python[^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def readme_blocks() -> list[tuple[str, str, int]]:
    """(info string, code, line number) of every python block in README.md."""
    text = (REPO / "README.md").read_text()
    return [(m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1) for m in BLOCK.finditer(text)]


def test_the_readme_has_a_runnable_python_example():
    assert any(info == "python" and "edgecnn.load(" in code for info, code, _ in readme_blocks())


@pytest.mark.parametrize("info, code, line", readme_blocks(), ids=[f"line{line}" for _, _, line in readme_blocks()])
def test_readme_python_block(info, code, line):
    compile(code, f"README.md:{line}", "exec")
    if info == "python fragment":
        return
    assert info == "python", f"README.md:{line}: unknown info string {info!r} (python or python fragment)"
    if "../shared/data" in code and not (REPO.parent / "shared" / "data").is_dir():
        pytest.skip(f"README.md:{line} reads ../shared/data, which is not beside this checkout")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"README.md:{line} failed:\n{result.stderr}"
    assert result.stdout.strip(), f"README.md:{line} printed nothing"
