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
    env = {
        **os.environ,
        "DASKTRAIN_DSN": own_database,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MPLBACKEND": "Agg",
    }
    for number, (kind, code) in enumerate(readme_blocks(), start=1):
        if kind == "python":
            script = tmp_path / f"block_{number}.py"
            script.write_text(code)
            command = [sys.executable, script.name]
        else:
            command = ["bash", "-euo", "pipefail", "-c", code]
        run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        output = f"--- stdout:\n{run.stdout[-3000:]}\n--- stderr:\n{run.stderr[-3000:]}"
        where = f"README block {number} ({kind}):\n{code}\n{output}"
        assert run.returncode == 0, where
        assert "Traceback" not in run.stderr, where
        for noise in ("cuInit", "Could not find cuda", "still alive", "rebuild TensorFlow"):
            assert noise not in run.stderr, f"{noise!r} in the output of {where}"
