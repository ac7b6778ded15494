"""The pages that show the command line use its flags as they are (tests/test_docs.py runs their blocks)."""

import re
import shlex
from pathlib import Path

import pytest

from dasktrain import cli
from dasktrain._cli._base import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SPAN = re.compile(r"`(dasktrain [^`|]+)`")  # inline code naming a command (not "fit | predict" lists)


def options_of(command: str) -> set[str]:
    """Every option string the subcommand accepts, hidden ones too."""
    parser = cli.build_parser()
    (choices,) = [a.choices for a in parser._actions if isinstance(a.choices, dict)]
    return {flag for action in choices[command]._actions for flag in action.option_strings}


def mentions(page: Path) -> list[str]:
    """The command lines of a page: inline code and lines of its code blocks that run ``dasktrain``."""
    text = page.read_text()
    found = [" ".join(span.split()) for span in SPAN.findall(text)]
    for block in re.findall(r"^```\w*\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            words = shlex.split(line) if "dasktrain " in line else []
            while words and "=" in words[0]:  # VAR=value before the command
                words = words[1:]
            if words[:1] == ["dasktrain"]:
                found.append(" ".join(words))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_flag_a_page_shows_exists(page):
    wrong = []
    for line in mentions(page):
        words = line.split()
        if len(words) < 2 or words[1] not in COMMANDS or words[1] == "load":  # load's flags are the loader's
            continue
        known = options_of(words[1])
        wrong += [f"{line!r}: {w}" for w in words[2:] if w.startswith("--") and w.split("=")[0] not in known]
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_a_flag_that_does_not_exist(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("`dasktrain models list --table models` shows every version\n")
    words = mentions(page)[0].split()
    assert "--table" not in options_of(words[1]) and "--model-table" in options_of("models")
