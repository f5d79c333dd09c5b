"""The Python code blocks of the documentation pages run as written.

Each page runs in its own interpreter, block after block in one namespace,
as a reader would paste them. The interpreter simulates four CPU devices so
that the sharding examples run with a real split. A block whose first line
is ``# requires: MODULE`` runs only where MODULE can be imported: the
PyTorch snippets of the FAQ need torch, which the test extra does not install.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap

import pytest

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
PAGES = ["concepts.md", "faq.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
REQUIRES = re.compile(r"^# requires: (\w+)\n")


def python_blocks(page: str) -> list[str]:
    with open(os.path.join(DOCS, page), encoding="utf-8") as handle:
        return BLOCK.findall(handle.read())


def runnable_source(page: str) -> str:
    parts = []
    for number, block in enumerate(python_blocks(page), start=1):
        required = REQUIRES.match(block)
        if required and importlib.util.find_spec(required.group(1)) is None:
            continue
        parts.append(f"# ---- block {number}\n{block}")
    return "\n".join(parts)


def test_pages_have_python_blocks():
    for page in PAGES:
        assert python_blocks(page), f"{page} has no python code blocks"


@pytest.mark.parametrize("page", PAGES)
def test_page_code_runs(page, tmp_path):
    script = tmp_path / "page.py"
    script.write_text(runnable_source(page), encoding="utf-8")
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, (
        f"{page}: a code block failed\n{textwrap.indent(result.stderr[-4000:], '  ')}"
    )
