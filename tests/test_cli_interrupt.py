"""Ctrl-C, --resume and early stopping on the command line: one line each, and the right exit status."""

import contextlib
import os
import signal
import subprocess
import sys

import pytest
from helpers import mlp

import dasktrain
from dasktrain import cli
from dasktrain.testing import wait_until

COMPILE = "optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']"


@pytest.fixture
def arch(db, table_name):
    """An architecture table holding the test MLP as model_id 1."""
    dasktrain.load_architecture(db, f"{table_name}_arch", mlp().to_json(), name="mlp")
    return f"{table_name}_arch"


def fit_argv(db, arch, table, *extra):
    return ["fit", "--dsn", db.dsn, "--data", "fit_digits_train", "--model-arch-table", arch, "--model-id", "1",
            "--compile", COMPILE, "--normalizing-const", "16", "--model-table", table, "--name", "ctrl_c",
            *extra]  # fmt: skip


def group_alive(pgid: int) -> list:
    """The processes of a process group still running (zombies waiting to be reaped are gone)."""
    import psutil

    alive = []
    for process in psutil.process_iter(["pid", "status", "cmdline"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(process.info)
        except (ProcessLookupError, psutil.Error):
            pass
    return alive


def versions(db, table):
    try:
        return dasktrain.list_models(db, table)
    except dasktrain.errors.SchemaError:
        return []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ctrl_c_is_one_line_and_status_130_and_resume_says_from_where(db, digits, arch, table_name):
    # As a terminal does: SIGINT to the whole process group (the command, its nanny and worker processes).
    command = [sys.executable, "-m", "dasktrain.cli", *fit_argv(db, arch, table_name, "--iterations", "200",
               "--checkpoint-every", "1", "--quiet")]  # fmt: skip
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        wait_until(lambda: versions(db, table_name) or run.poll() is not None, timeout=600, every=0.2)
        assert run.poll() is None, run.communicate()
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130, err[-3000:]
    assert "Traceback" not in out + err and "Error" not in err, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    last = versions(db, table_name)[-1]
    assert lines[0].startswith("dasktrain fit: interrupted in iteration ")
    assert f"the last checkpoint is version {last['version']} of 'ctrl_c' in '{table_name}' (a checkpoint after " \
           f"iteration {last['num_iterations']}): rerun with --resume" in lines[0]  # fmt: skip
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not group_alive(run.pid), timeout=10, every=0.2)
    assert not group_alive(run.pid)  # the cluster's processes are gone with the command

    target = last["num_iterations"] + 1
    resumed = subprocess.run([sys.executable, "-m", "dasktrain.cli", *fit_argv(db, arch, table_name, "--iterations",
                              str(target), "--checkpoint-every", "1", "--resume", "--quiet")],
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.strip().splitlines() == [
        f"dasktrain fit: resuming from version {last['version']} of 'ctrl_c' in '{table_name}' (a checkpoint after "
        f"iteration {last['num_iterations']}), up to iteration {target}"
    ]
    assert f"trained {target} iterations" in resumed.stdout


def test_resume_with_nothing_saved_warns_in_one_line_and_trains_from_zero(db, client, digits, arch, table_name,
                                                                          capsys, caplog):  # fmt: skip
    """The warning is fit()'s own, so that the Python API says it too; the CLI adds nothing to it."""
    argv = fit_argv(db, arch, table_name, "--iterations", "1", "--resume", "--quiet")
    with caplog.at_level("WARNING", logger="dasktrain"):
        assert cli.main([*argv, "--scheduler", client.scheduler.address]) == 0
    out, err = capsys.readouterr()
    assert [r.getMessage() for r in caplog.records if r.name == "dasktrain"] == [
        f"fit: resume found no version of 'ctrl_c' in '{table_name}': training from iteration 0"
    ]
    assert "resum" not in err
    assert "trained 1 iterations" in out


def test_early_stopping_says_why_and_ends_the_bar(db, client, digits, arch, table_name, capsys):
    argv = fit_argv(db, arch, table_name, "--iterations", "5", "--validation", "fit_digits_test",
                    "--early-stopping", "patience=1, min_delta=100")  # fmt: skip
    assert cli.main([*argv, "--scheduler", client.scheduler.address]) == 0
    out, err = capsys.readouterr()
    assert "stopped early at iteration 2: validation loss did not improve by more than 100 for 1 iteration\n" in out
    assert "trained 2 iterations" in out
    bar = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("fit:")][-1]
    assert "100%" in bar and "4/4" in bar and "stopped early" in bar, err
    assert dasktrain.model_summary(db, table_name, "ctrl_c")["num_iterations"] == 2


def test_the_progress_bar_ends_where_a_fit_stops_early_and_notes_an_interrupt(capsys):
    from dasktrain.train._progress import FitProgress

    early = FitProgress(iterations=5, done=0, replicas=2, rows=100, enabled=True)
    for iteration in (1, 2):
        early.round_done({"iteration": iteration, "training": {"loss": 0.5}, "validation": None})
    early.close()
    shown = capsys.readouterr().err.replace("\r", "\n").splitlines()[-1]
    assert "100%" in shown and "4/4" in shown and "stopped early" in shown

    interrupted = FitProgress(iterations=5, done=1, replicas=2, rows=100, enabled=False)
    with pytest.raises(KeyboardInterrupt) as caught:
        try:
            raise KeyboardInterrupt
        finally:
            interrupted.close()
    assert caught.value.__notes__ == ["fit: interrupted in iteration 2 of 5"]
    assert interrupted.bar.total == 10  # an interrupted fit did not stop early


def test_early_stopping_takes_a_patience_and_says_why():
    from dasktrain.train._early_stopping import EarlyStopping

    stop = EarlyStopping.of(2)
    assert stop == EarlyStopping(patience=2)
    assert [stop.update(v) for v in (1.0, 1.0, 1.0)] == [False, False, True]
    assert stop.reason("training_loss") == "training loss did not improve for 2 iterations"
