"""The README's examples run as written, in order, in a fresh folder: the page cannot drift from the code.

Python blocks run as scripts in a new process, shell blocks through bash, in a new folder holding a
copy of ``examples/`` (what a fresh clone has), against a database of their own. ``console`` blocks
(the set-up commands: installing, and running these very tests) and ``text`` blocks are shown, not run.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
RUN = {"python", "bash"}


def readme_blocks() -> list[tuple[str, str]]:
    return [(kind, code) for kind, code in BLOCK.findall((ROOT / "README.md").read_text()) if kind in RUN]


def test_every_block_is_marked_run_or_shown():
    kinds = {kind for kind, _ in BLOCK.findall((ROOT / "README.md").read_text())}
    assert kinds <= RUN | {"console", "text"}, f"unmarked or unknown code blocks: {kinds - RUN - {'console', 'text'}}"
    assert len(readme_blocks()) >= 8


def test_python_blocks_that_start_processes_are_guarded():
    for kind, code in readme_blocks():
        if kind == "python" and ("cluster(" in code or "Client(" in code):
            assert 'if __name__ == "__main__":' in code, code


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_readme_runs_in_order_as_written(own_database, tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for number, (kind, code) in enumerate(readme_blocks(), start=1):
        run, where = run_block(kind, code, tmp_path, own_database, tmp_path / f"block_{number}.py")
        where = f"README block {number} ({kind}):\n{where}"
        assert run.returncode == 0, where
        assert "Traceback" not in run.stderr, where
        for noise in ("cuInit", "Could not find cuda", "still alive", "rebuild TensorFlow"):
            assert noise not in run.stderr, f"{noise!r} in the output of {where}"


def run_block(kind: str, code: str, cwd: Path, dsn: str, script: Path):
    """Run one ``python`` or ``bash`` block in ``cwd`` against ``dsn``; the finished process, and the block
    with its output for an assertion's message."""
    env = {
        **os.environ,
        "DASKTRAIN_DSN": dsn,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MPLBACKEND": "Agg",
    }
    if kind == "python":
        script.write_text(code)
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    return run, f"{code}\n--- stdout:\n{run.stdout[-3000:]}\n--- stderr:\n{run.stderr[-3000:]}"
