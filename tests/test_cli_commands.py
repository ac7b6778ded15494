"""A command for every job: model selection (grid, random, Hyperband), one model per group, and fit's flags."""

import os
import subprocess
import sys

import pytest
from helpers import mlp
from psycopg2 import sql

import dasktrain
import loaders
from dasktrain import cli
from dasktrain.testing import drop_tables

COMPILE = "optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']"


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def arch(db, table_name):
    dasktrain.load_architecture(db, f"{table_name}_arch", mlp().to_json(), name="mlp")
    return f"{table_name}_arch"


def test_select_runs_a_grid_prints_its_table_and_saves_it(db, client, digits, arch, table_name, capsys):
    code, out, err = run(
        capsys, "select", "--dsn", db.dsn, "--scheduler", client.scheduler.address, "--data", "fit_digits_train",
        "--validation", "fit_digits_test", "--model-arch-table", arch, "--model-id", "1", "--compile",
        "optimizer='adam', learning_rate=[0.001, 0.01], loss='sparse_categorical_crossentropy', metrics=['accuracy']",
        "--iterations", "1", "--normalizing-const", "16", "--model-table", table_name, "--name", "lr", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["mst_key", "architecture"] and "validation_loss" in lines[0]
    assert sorted(line.split()[0] for line in lines[1:3]) == ["1", "2"]
    assert lines[3].startswith(f"saved {table_name}: name lr, version 1; best: mst_key ")
    best = int(lines[3].split("mst_key ")[1].split()[0])
    assert lines[1].split()[0] == str(best)  # the table is ranked, best first
    assert dasktrain.load_model(db, table_name, "lr", mst_key=2) is not None


def test_select_runs_hyperband_from_a_job_file(db, client, digits, arch, tmp_path, capsys):
    job = tmp_path / "search.yaml"
    job.write_text(
        f"data: fit_digits_train\nvalidation: fit_digits_test\nmodel_arch_table: {arch}\nmodel_id: [1]\n"
        "compile:\n  optimizer: adam\n  learning_rate: {loguniform: [0.001, 0.01]}\n"
        "  loss: sparse_categorical_crossentropy\n  metrics: [accuracy]\n"
        "fit: {batch_size: [32, 64]}\nsearch: hyperband\nR: 2\neta: 2\nbracket: 0\nseed: 4\nnormalizing_const: 16\n"
    )
    code, out, err = run(capsys, "select", "--dsn", db.dsn, "--scheduler", client.scheduler.address, "--job", str(job),
                         "--quiet")  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4 and lines[-1].startswith("best: mst_key ")  # bracket 0 of R=2, eta=2: 2 configurations
    for line in lines[1:3]:  # drawn learning rates, and 2 iterations each (status, then iterations)
        words = line.split()
        assert "optimizer='Adam(learning_rate=" in line and words[words.index("finished") + 1] == "2", out


def test_select_refuses_a_model_table_of_single_models_before_any_work(db, trained, arch, capsys):
    code, _, err = run(capsys, "select", "--dsn", db.dsn, "--data", "fit_digits_train", "--model-arch-table", arch,
                       "--model-id", "1", "--compile", COMPILE, "--iterations", "1", "--model-table", "scoring_models")
    assert code == 2 and "Table 'scoring_models' holds single models" in err
    code, _, err = run(capsys, "select", "--dsn", db.dsn, "--data", "fit_digits_train", "--model-arch-table", arch,
                       "--model-id", "1", "--compile", COMPILE)  # fmt: skip
    assert code == 2 and "--search grid needs --iterations" in err


def test_a_search_space_takes_lists_and_distributions():
    from dasktrain._cli._select import search_space

    space = search_space({"learning_rate": {"loguniform": [0.001, 0.1]}, "optimizer": {"choice": ["adam", "sgd"]},
                          "loss": "mse", "loss_weights": {"a": 1.0}}, "compile")  # fmt: skip
    assert space["learning_rate"] == dasktrain.loguniform(0.001, 0.1)
    assert space["optimizer"] == dasktrain.choice(["adam", "sgd"]) and space["loss_weights"] == {"a": 1.0}
    assert search_space("batch_size=[32, 128], epochs=1", "fit") == {"batch_size": [32, 128], "epochs": 1}
    with pytest.raises(dasktrain.errors.DasktrainError, match=r"uniform takes \[low, high\]"):
        search_space({"learning_rate": {"uniform": [1]}}, "compile")


@pytest.fixture
def grouped(db, digits, table_name):
    x, y = digits
    name = f"{table_name}_groups"
    loaders.write_arrays(db, name, x[:600], y[:600], segments=2)
    with db.cursor() as cur:
        cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN site text").format(sql.Identifier(name)))
        cur.execute(sql.SQL("UPDATE {} SET site = CASE WHEN id % 2 = 0 THEN 'north' ELSE 'south' END")
                    .format(sql.Identifier(name)))  # fmt: skip
    yield name
    drop_tables(db, name)


def test_fit_groups_trains_and_saves_one_model_per_group(db, client, grouped, arch, table_name, tmp_path, capsys):
    job = tmp_path / "groups.yaml"
    job.write_text(f"data: {grouped}\nby: site\nmodel_arch_table: {arch}\nmodel_id: 1\ncompile: \"{COMPILE}\"\n"
                   f"iterations: 1\nnormalizing_const: 16\nseed: 1\nmodel_table: {table_name}\nname: sites\n")
    code, out, err = run(capsys, "fit-groups", "--dsn", db.dsn, "--scheduler", client.scheduler.address, "--job",
                         str(job), "--quiet")  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["mst_key", "site", "trained_on"]
    assert sorted(line.split()[1] for line in lines[1:3]) == ["north", "south"]
    assert lines[3] == f"saved {table_name}: name sites, version 1, 2 groups"
    assert dasktrain.load_model(db, table_name, "sites", mst_key=1) is not None


class Called(Exception):
    pass


@pytest.fixture
def fit_arguments(monkeypatch):
    """What ``dasktrain fit`` passes to dasktrain.fit (which then stops, before any work)."""
    seen = {}

    def fake_fit(data, model, **kwargs):
        seen.update(kwargs, data=data, model=model)
        raise Called

    monkeypatch.setattr(dasktrain, "fit", fake_fit)
    return seen


def test_fit_takes_seed_early_stopping_cache_and_replicas_as_flags_and_job_keys(db, fit_arguments, arch, tmp_path,
                                                                                  table_name):  # fmt: skip
    from dasktrain import EarlyStopping

    base = ["fit", "--dsn", db.dsn, "--data", "d", "--model-arch-table", arch, "--model-id", "1", "--compile", COMPILE,
            "--iterations", "3", "--model-table", table_name]  # fmt: skip
    with pytest.raises(Called):
        cli.main([*base, "--seed", "7", "--early-stopping", "patience=2, min_delta=0.01", "--cache", "disk",
                  "--replicas", "2"])  # fmt: skip
    assert fit_arguments["seed"] == 7 and fit_arguments["cache"] == "disk" and fit_arguments["replicas"] == 2
    assert fit_arguments["early_stopping"] == EarlyStopping(patience=2, min_delta=0.01)
    job = tmp_path / "fit.yaml"
    job.write_text("seed: 3\nearly_stopping: 4\ncache: memory\nreplicas: segments\n")
    with pytest.raises(Called):
        cli.main([*base, "--job", str(job)])
    assert fit_arguments["seed"] == 3 and fit_arguments["cache"] == "memory" and fit_arguments["replicas"] == "segments"
    assert fit_arguments["early_stopping"] == EarlyStopping(patience=4)


def test_bad_early_stopping_is_one_line(db, arch, table_name, capsys):
    code, _, err = run(capsys, "fit", "--dsn", db.dsn, "--data", "d", "--model-arch-table", arch, "--model-id", "1",
                       "--compile", COMPILE, "--iterations", "3", "--model-table", table_name, "--early-stopping",
                       "patience=0")  # fmt: skip
    assert code == 2
    assert err == "dasktrain fit: error: EarlyStopping expects a positive integer patience. Received: patience=0\n"


@pytest.mark.slow
def test_quiet_silences_the_embedded_server_line():
    env = {k: v for k, v in os.environ.items() if k != "DASKTRAIN_DSN"}  # the embedded default database
    command = [sys.executable, "-m", "dasktrain.cli", "segments", "no_such_table"]
    loud = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    quiet = subprocess.run([*command, "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert loud.returncode == quiet.returncode == 2
    assert "embedded PostgreSQL" in loud.stderr
    assert "embedded PostgreSQL" not in quiet.stderr
    assert quiet.stderr.strip().count("\n") == 0, quiet.stderr  # the error, in one line
