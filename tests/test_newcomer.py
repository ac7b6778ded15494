"""What a newcomer meets first: the command line's wording and exit codes, quiet output, the dashboard."""

import os
import re
import subprocess
import sys
import urllib.request

import pytest
from distributed import Client

import dasktrain
import loaders
from dasktrain import cli
from dasktrain.runtime._cluster import PatientNanny
from dasktrain.runtime._quiet import NOISE, filtered_stderr

# -- the command line --------------------------------------------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"dasktrain {dasktrain.__version__}"


def test_errors_name_flags_and_commands_not_python_calls(db, trained, table_name, capsys):
    assert cli.main(["models", "show", "--dsn", db.dsn, "--model-table", "scoring_models", "--name", "nope"]) == 2
    err = capsys.readouterr().err
    assert "see 'dasktrain models list'" in err and "list_models()" not in err
    loaders.write_arrays(db, table_name, [[1.0]], [0])
    assert cli.main(["predict", "--dsn", db.dsn, "--model-table", "scoring_models", "--source", "fit_digits_test",
                     "--output", table_name, "--quiet"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "Pass --replace to replace it" in err and "replace=True" not in err
    assert cli.main(["architectures", "list", "--dsn", db.dsn, "--table", "no_such_arch"]) == 2
    err = capsys.readouterr().err
    assert "'dasktrain architectures load'" in err and "load_architecture()" not in err
    for python, command in cli._COMMAND_WORDS:
        assert cli.in_command_words(f"x. {python}.") == f"x. {command}."


def test_a_failing_command_prints_nothing_before_its_error(db, capsys):
    assert cli.main(["segments", "no_such_table", "--dsn", db.dsn]) == 2
    assert capsys.readouterr().out == ""
    assert cli.main(["models", "list", "--dsn", db.dsn, "--model-table", "no_such_models"]) == 2
    assert capsys.readouterr().out == ""


def test_debug_shows_the_traceback_and_keeps_the_exit_status(db, capsys):
    assert cli.main(["segments", "no_such_table", "--dsn", db.dsn, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: Table 'no_such_table' does not exist" in err


def test_an_early_stopping_typo_names_the_known_keys():
    with pytest.raises(dasktrain.errors.DataError, match="no parameter 'patiense'. Known: patience, min_delta"):
        dasktrain.EarlyStopping.of({"patiense": 2})


def test_a_scheduler_address_says_what_it_waits_for(capsys):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        status = cli.main(["evaluate", "--scheduler", "tcp://127.0.0.1:9", "--model-table", "m", "--name", "n",
                           "--table", "t"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2
    assert "connecting to the Dask scheduler at tcp://127.0.0.1:9 (waiting up to 1s)" in err


def test_models_show_prints_layers_and_rounded_metrics(db, trained, capsys):
    assert cli.main(["models", "show", "--dsn", db.dsn, "--model-table", "scoring_models", "--name", "digits_mlp"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^training_loss_final: \d\.\d{4}$", out, re.MULTILINE)
    assert re.search(r"^dense\w* \(Dense\) +\(None, 16\) +1,040$", out, re.MULTILINE)  # names count up per process
    assert cli.main(["models", "list", "--dsn", db.dsn, "--model-table", "scoring_models"]) == 0
    assert "val accuracy" in capsys.readouterr().out


def test_loader_programs_start_without_a_warning():
    run = subprocess.run([sys.executable, "-m", "loaders.idx", "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "usage: python -m loaders.idx" in run.stdout
    assert "RuntimeWarning" not in run.stderr, run.stderr
    assert callable(loaders.read_images_and_labels)  # still there, loaded on first use


# -- output ------------------------------------------------------------------------------------------


def test_a_training_result_prints_short(trained):
    text = repr(trained)
    assert len(text) < 400, text
    assert text.startswith(
        "TrainingResult(strategy=slowmo, iterations=3, rows=1400, segments=2, replicas=2, parameters=1210"
    )
    assert "training_loss=" in text


def test_tensorflow_start_up_noise_is_filtered_and_the_rest_kept():
    lines = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        "I0000 00:00:1795805605.492964   20661 port.cc:153] oneDNN custom operations are on.\n",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with flags.\n",
    ]
    assert all(NOISE.match(line) for line in lines)
    assert not NOISE.match("ERROR: something that matters\n")
    code = (
        "import os, sys\nfrom dasktrain.runtime._quiet import filtered_stderr\nwith filtered_stderr():\n"
        + "".join(f"    os.write(2, {line.encode()!r})\n" for line in lines)
        + "    os.write(2, b'kept line\\n')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stderr == "kept line\n"
    assert filtered_stderr  # the context manager the package uses on its first TensorFlow import


def test_importing_dasktrain_then_tensorflow_prints_nothing():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = "import dasktrain, keras, numpy as np\nkeras.layers.Dense(2)(np.zeros((1, 2), 'float32'))\nprint('ok')"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert run.stdout.strip() == "ok"
    assert run.stderr == "", run.stderr


# -- the dashboard -----------------------------------------------------------------------------------


def test_each_cluster_gets_a_dashboard_that_answers_even_when_8787_is_taken(recwarn):
    with dasktrain.cluster(n_workers=1) as first, dasktrain.cluster(n_workers=1) as second:
        for local in (first, second):
            with Client(local) as client:
                with urllib.request.urlopen(client.dashboard_link, timeout=30) as page:
                    assert page.status == 200
        assert first.dashboard_link != second.dashboard_link
        # Their nannies wait for a slow worker to exit instead of killing it with a warning.
        assert all(isinstance(w, PatientNanny) for w in [*first.workers.values(), *second.workers.values()])
    assert not [w for w in recwarn if "already in use" in str(w.message)]


@pytest.mark.slow
def test_fit_on_its_own_cluster_prints_the_dashboard_link_and_its_progress(db, digits, tmp_path):
    script = tmp_path / "fit_alone.py"
    script.write_text(
        "import dasktrain, keras\n"
        "if __name__ == '__main__':\n"
        "    model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(), keras.layers.Dense(10)])\n"
        "    dasktrain.fit('fit_digits_train', model, x='x', y='y', iterations=2, normalizing_const=16.0,\n"
        "                  compile={'optimizer': 'adam', 'loss': 'sparse_categorical_crossentropy'})\n"
    )
    env = {**os.environ, "DASKTRAIN_DSN": db.dsn}
    run = subprocess.run([sys.executable, script.name], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    match = re.search(r"dasktrain: started a local Dask cluster of \d+ worker process(es)?; dashboard: http://\S+",
                      run.stderr)  # fmt: skip
    assert match, run.stderr
    assert "fit: 100%" in run.stderr and "replica" in run.stderr
    for noise in ("cuInit", "Could not find cuda", "Traceback", "still alive"):
        assert noise not in run.stderr
