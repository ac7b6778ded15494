import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by pip install -e '.[dev]'")
def test_ruff_finds_nothing():
    result = subprocess.run(["ruff", "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


#: The library's layers, lowest first: a module may import from its own layer and those below.
LAYERS = {"": 0, "strategies": 0, "io": 1, "runtime": 2, "models": 3, "train": 4, "score": 4, "select": 5, "_cli": 6}
ENTRY_POINTS = {"__init__", "cli", "_demo", "_jobs", "testing", "_chaos", "gpu_worker"}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(line, absolute target parts below dasktrain) of each relative import in ``path``."""
    parts = path.relative_to(ROOT / "dasktrain").parts
    package = list(parts[:-1])
    found = []
    for line in path.read_text().splitlines():
        match = re.match(r"\s*from (\.+)([\w.]*) import", line)
        if match:
            up = len(match.group(1)) - 1
            target = package[: len(package) - up] + [p for p in match.group(2).split(".") if p]
            found.append((line.strip(), target))
    return found


def test_nothing_imports_upwards():
    """io < runtime < models < train, score (which are peers); the model spec, names and errors are below all."""
    wrong = []
    for path in (ROOT / "dasktrain").rglob("*.py"):
        parts = path.relative_to(ROOT / "dasktrain").parts
        layer = parts[0] if len(parts) > 1 else ""
        if not layer and path.stem in ENTRY_POINTS:
            continue
        for line, target in _imports(path):
            target_layer = target[0] if target and target[0] in LAYERS else ""
            if not target_layer and target and target[0] in ENTRY_POINTS:
                wrong.append(f"{path.relative_to(ROOT)}: {line} (an entry point)")
            elif LAYERS[target_layer] > LAYERS[layer] or {layer, target_layer} == {"train", "score"}:
                wrong.append(f"{path.relative_to(ROOT)}: {line}")
    assert not wrong, "\n".join(wrong)
