"""The dasktrain command line for jobs: exit codes, one-line errors, job files."""

import subprocess
import sys

import pytest

import dasktrain
from dasktrain import cli

#: Each subcommand, and the cluster flags it lists: all, those of the local cluster it starts, or none.
SUBCOMMANDS = {"segments": None, "load": None, "demo": "local", "fit": "all", "fit-groups": "all", "select": "all",
               "predict": "all", "evaluate": "all", "models": None, "architectures": None}  # fmt: skip
LOCAL_FLAGS = ["--gpus", "--workers-per-gpu", "--dashboard"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def help_text(capsys, name):
    with pytest.raises(SystemExit):
        cli.main([name, "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_explains_itself_with_an_example(name):
    out = subprocess.run([sys.executable, "-m", "dasktrain.cli", name, "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "example:" in out.stdout and "--dsn" in out.stdout and "--quiet" in out.stdout


@pytest.mark.parametrize("name, flags", SUBCOMMANDS.items())
def test_only_commands_that_start_a_cluster_list_cluster_flags(name, flags, capsys):
    text = help_text(capsys, name)
    assert ("--scheduler" in text) == (flags == "all")
    assert all((flag in text) == (flags is not None) for flag in LOCAL_FLAGS), text


def test_predict_and_evaluate_from_flags(db, client, trained, table_name, capsys):
    code, out, _ = run(
        capsys,
        "predict",
        "--dsn",
        db.dsn,
        "--model-table",
        "scoring_models",
        "--name",
        "digits_mlp",
        "--source",
        "fit_digits_test",
        "--output",
        table_name,
        "--pred-type",
        "2",
        "--quiet",
    )
    assert code == 0 and out.strip() == "wrote 794 prediction rows"
    code, out, _ = run(
        capsys,
        "evaluate",
        "--scheduler",
        client.scheduler.address,
        "--dsn",
        db.dsn,
        "--model-table",
        "scoring_models",
        "--name",
        "digits_mlp",
        "--version",
        "latest",
        "--table",
        "fit_digits_test",
    )
    assert code == 0 and "accuracy: " in out and "rows: 397" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--name", "nope"], "No model named 'nope'"),
        (["--version", "9"], "has no version 9"),
        (["--pred-type", "1.5"], "threshold must be in (0, 1)"),
        (["--pred-type", "best"], "--pred-type takes"),
        (["--id", "ident"], "no id column 'ident'"),
    ],
)
def test_bad_scoring_input_is_one_line_and_a_nonzero_exit(db, trained, table_name, capsys, extra, message):
    argv = [
        "predict",
        "--dsn",
        db.dsn,
        "--model-table",
        "scoring_models",
        "--source",
        "fit_digits_test",
        "--output",
        table_name,
        "--quiet",
        *extra,
    ]
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("dasktrain predict: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_existing_output_needs_replace(db, trained, table_name, capsys):
    argv = [
        "predict",
        "--dsn",
        db.dsn,
        "--model-table",
        "scoring_models",
        "--source",
        "fit_digits_test",
        "--output",
        table_name,
        "--quiet",
    ]
    assert run(capsys, *argv)[0] == 0
    code, _, err = run(capsys, *argv)
    assert code == 2 and "--replace" in err
    assert run(capsys, *argv, "--replace")[0] == 0


def test_a_scoring_job_file_round_trip(db, trained, table_name, tmp_path, capsys):
    job = tmp_path / "score.yaml"
    job.write_text(
        f"model_table: scoring_models\nname: digits_mlp\nversion: latest\nsource_table: fit_digits_test\n"
        f"output_table: {table_name}\npred_type: prob\nreplace: true\n"
    )
    for _ in range(2):  # a re-run replaces the previous output
        code, out, _ = run(capsys, "predict", "--dsn", db.dsn, "--job", str(job), "--quiet")
        assert code == 0 and out.strip() == "wrote 3970 prediction rows"
    code, out, _ = run(capsys, "predict", "--dsn", db.dsn, "--job", str(job), "--pred-type", "1", "--quiet")
    assert code == 0 and out.strip() == "wrote 397 prediction rows"  # a flag overrides the job file
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table_name}")
        assert cur.fetchone()[0] == 397


def test_job_files_with_unknown_keys_or_bad_yaml_are_refused(db, tmp_path, capsys):
    job = tmp_path / "bad.yaml"
    job.write_text("model_table: m\nsource_table: s\noutput_table: o\npredtype: prob\n")
    code, _, err = run(capsys, "predict", "--dsn", db.dsn, "--job", str(job))
    assert code == 2 and "unknown key(s) predtype" in err and "pred_type" in err
    job.write_text("model_table: [unclosed\n")
    code, _, err = run(capsys, "predict", "--dsn", db.dsn, "--job", str(job))
    assert code == 2 and "not valid YAML" in err
    code, _, err = run(capsys, "predict", "--dsn", db.dsn, "--job", str(tmp_path / "missing.yaml"))
    assert code == 2 and "Cannot read job file" in err
    code, _, err = run(capsys, "predict", "--dsn", db.dsn, "--model-table", "m")
    assert code == 2 and "missing --source-table, --output-table" in err


def test_fit_job_architectures_and_models(db, digits, table_name, tmp_path, capsys):
    from helpers import mlp

    spec = tmp_path / "mlp.json"
    spec.write_text(mlp().to_json())
    code, out, _ = run(
        capsys,
        "architectures",
        "load",
        "--dsn",
        db.dsn,
        "--model-arch-table",
        f"{table_name}_arch",
        "--json",
        str(spec),
        "--name",
        "mlp",
    )
    assert code == 0 and out.strip() == "model_id 1"
    listed = run(capsys, "architectures", "list", "--dsn", db.dsn, "--model-arch-table", f"{table_name}_arch")[1]
    assert "mlp" in listed
    # the flag's old name still works, and is not shown
    assert run(capsys, "architectures", "list", "--dsn", db.dsn, "--table", f"{table_name}_arch")[1] == listed
    assert "--table" not in help_text(capsys, "architectures")
    job = tmp_path / "fit.yaml"
    job.write_text(
        f"data: fit_digits_train\nvalidation: fit_digits_test\nmodel_arch_table: {table_name}_arch\nmodel_id: 1\n"
        "compile: \"optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']\"\n"
        f"iterations: 2\nstrategy: easgd\nalpha: 0.5\nnormalizing_const: 16\nmodel_table: {table_name}\nname: cli\n"
        "cache: disk\n"
    )
    code, out, _ = run(capsys, "fit", "--dsn", db.dsn, "--job", str(job), "--quiet")
    assert code == 0 and f"saved {table_name}: name cli, version 1" in out and "validation: " in out
    listed = run(capsys, "models", "list", "--dsn", db.dsn, "--model-table", table_name)[1]
    assert "cli" in listed and "easgd" in listed
    shown = run(capsys, "models", "show", "--dsn", db.dsn, "--model-table", table_name, "--name", "cli")[1]
    assert "strategy_params: {'alpha': 0.5, 'beta': 0.9}" in shown and "num_iterations: 2" in shown
    assert run(capsys, "models", "delete", "--dsn", db.dsn, "--model-table", table_name, "--name", "cli")[0] == 0
    assert dasktrain.list_models(db, table_name) == []
    argv = ["architectures", "delete", "--dsn", db.dsn, "--model-arch-table", f"{table_name}_arch", "--model-id", "5"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "No architecture with model_id=5" in err
    code, _, err = run(capsys, "architectures", "list", "--dsn", db.dsn)
    assert code == 2 and "architectures list needs --model-arch-table" in err


@pytest.mark.slow
def test_without_a_scheduler_a_local_cluster_is_started_and_closed(db, trained):
    argv = ["evaluate", "--dsn", db.dsn, "--model-table", "scoring_models", "--table", "fit_digits_test"]
    out = subprocess.run([sys.executable, "-m", "dasktrain.cli", *argv], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rows: 397" in out.stdout and "accuracy: " in out.stdout


def test_a_scheduler_without_workers_ends_with_a_message_not_a_hang(db, trained, table_name, capsys):
    import dask
    from distributed import LocalCluster

    argv = ["predict", "--dsn", db.dsn, "--model-table", "scoring_models", "--source", "fit_digits_test"]
    with LocalCluster(n_workers=0, dashboard_address=":0") as bare, dask.config.set({"dasktrain.worker-timeout": 1}):
        code = cli.main([*argv, "--output", table_name, "--scheduler", bare.scheduler_address, "--quiet"])
    assert code == 2
    assert "no Dask worker is connected to the scheduler at tcp://" in capsys.readouterr().err


def test_fit_at_a_scheduler_without_workers_ends_with_a_message_not_a_hang(db, digits):
    import dask
    from distributed import Client, LocalCluster
    from helpers import COMPILE, mlp

    import dasktrain
    from dasktrain.errors import NoWorkersError

    with LocalCluster(n_workers=0, dashboard_address=":0") as bare, Client(bare) as client:
        with (
            dask.config.set({"dasktrain.worker-timeout": 1}),
            pytest.raises(NoWorkersError, match="dask worker tcp://"),
        ):
            dasktrain.fit("fit_digits_train", mlp(), x="x", y="y", compile=COMPILE, iterations=1, db=db, client=client)


def test_demo_with_no_workers_is_refused_at_once(capsys):
    assert cli.main(["demo", "--workers", "0"]) == 2
    assert "Expected a positive integer workers. Received: workers=0" in capsys.readouterr().err
