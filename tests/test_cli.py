import subprocess
import sys

import numpy as np

import loaders
from dasktrain import cli


def test_segments_command_lists_each_leaf(db, table_name, capsys):
    loaders.write_arrays(db, table_name, np.zeros((40, 2)), segments=3)
    assert cli.main(["segments", table_name, "--dsn", db.dsn]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[1].split()[3] == f"public.{table_name}_seg0"


def test_errors_are_one_line_without_traceback(db, capsys):
    assert cli.main(["segments", "missing_table", "--dsn", db.dsn]) == 2
    err = capsys.readouterr().err
    assert (
        err == "dasktrain segments: error: Table 'missing_table' does not exist. "
        "Check the name and schema (unqualified names are looked up on the search_path).\n"
    )


def test_load_command_runs_a_loader(db, table_name, capsys):
    assert cli.main(["load", "digits", "--dsn", db.dsn, "--table", table_name, "--quiet"]) == 0
    assert "loaded 1797 rows" in capsys.readouterr().out


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "dasktrain.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "segments" in out.stdout and "load" in out.stdout
