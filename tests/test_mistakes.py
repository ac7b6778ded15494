"""Destructive mistakes are refused before any work: outputs that would overwrite inputs, dropped
views, a wrong model table, misspelled strategies."""

import numpy as np
import pytest
import yaml

import dasktrain
import loaders
from dasktrain import cli
from dasktrain.errors import SchemaError
from dasktrain.testing import table_exists

SOURCE = "fit_digits_test"


def _count(db, table):
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        return cur.fetchone()[0]


@pytest.mark.parametrize(
    "output, role",
    [
        (SOURCE, "the source table"),
        (f"{SOURCE}_seg0", "the source table"),  # a leaf partition of the source
        (f"{SOURCE}_summary", "the source table's summary"),
        ("scoring_models", "the model table"),
        ("scoring_models_summary", "the model table's summary"),
    ],
)
def test_predict_table_refuses_to_write_over_what_it_reads(db, trained, output, role):
    before = _count(db, output)
    with pytest.raises(SchemaError, match=f"'{output}' is {role}"):
        dasktrain.predict_table(db, "scoring_models", SOURCE, output, replace=True, progress=False)
    assert _count(db, output) == before


def test_the_command_line_refuses_it_too(db, trained, capsys):
    argv = ["predict", "--dsn", db.dsn, "--model-table", "scoring_models", "--source", SOURCE, "--replace"]
    assert cli.main([*argv, "--output", "scoring_models"]) == 2
    assert "is the model table" in capsys.readouterr().err
    assert _count(db, "scoring_models") == 1


@pytest.mark.parametrize("output", [SOURCE, "scoring_models"])
def test_evaluate_refuses_to_write_over_what_it_reads(db, trained, output):
    before = _count(db, output)
    with pytest.raises(SchemaError, match="writing there would destroy it"):
        dasktrain.evaluate(db, "scoring_models", SOURCE, output_table=output, replace=True)
    assert _count(db, output) == before


def test_replacing_a_table_with_a_dependent_view_names_the_view_and_changes_nothing(db, table_name):
    loaders.write_arrays(db, table_name, np.zeros((4, 2)), [0, 1, 0, 1])
    with db.cursor() as cur:
        cur.execute(f"CREATE VIEW {table_name}_v AS SELECT id FROM {table_name}")
    with pytest.raises(SchemaError, match=f"view {table_name}_v depends on table {table_name}.*cascade=True"):
        loaders.write_arrays(db, table_name, np.ones((6, 2)), [1] * 6, if_exists="replace")
    assert _count(db, table_name) == 4 and _count(db, f"{table_name}_v") == 4
    loaders.write_arrays(db, table_name, np.ones((6, 2)), [1] * 6, if_exists="replace", cascade=True)
    assert _count(db, table_name) == 6 and not table_exists(db, f"{table_name}_v")


def _fit_argv(db, arch, *extra):
    return [
        "fit", "--dsn", db.dsn, "--data", "fit_digits_train", "--model-arch-table", arch, "--model-id", "1",
        "--compile", "optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy']",
        "--normalizing-const", "16", "--quiet", *extra,
    ]  # fmt: skip


@pytest.fixture
def architecture(db, table_name):
    from helpers import mlp

    arch = f"{table_name}_arch"
    dasktrain.load_architecture(db, arch, mlp())
    return arch


def test_a_data_table_given_as_model_table_is_refused_before_training(db, digits, architecture, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("fit must not start")

    monkeypatch.setattr(dasktrain, "fit", no_training)
    argv = _fit_argv(db, architecture, "--iterations", "2", "--model-table", "fit_digits_train")
    assert cli.main(argv) == 2
    assert "'fit_digits_train' exists but is not a dasktrain model table" in capsys.readouterr().err


def test_cli_fit_checkpoints_and_resumes(db, client, digits, architecture, table_name, capsys):
    models = f"{table_name}_models"
    base = [*_fit_argv(db, architecture), "--scheduler", client.scheduler.address, "--model-table", models]
    assert cli.main([*base, "--iterations", "2", "--checkpoint-every", "1", "--name", "m"]) == 0
    assert [(m["version"], m["status"]) for m in dasktrain.list_models(db, models)] == [
        (1, "checkpoint"),
        (2, "checkpoint"),
        (3, "final"),
    ]
    assert cli.main([*base, "--iterations", "3", "--resume", "--name", "m"]) == 0
    final = dasktrain.model_summary(db, models, "m")
    assert final["status"] == "final" and final["num_iterations"] == 3
    assert "trained 3 iterations" in capsys.readouterr().out


def test_a_job_file_strategy_is_case_insensitive_and_keeps_its_parameters(db, client, digits, architecture, tmp_path):
    models = f"{architecture}_models"
    job = tmp_path / "fit.yaml"
    job.write_text(yaml.safe_dump({"strategy": "EASGD", "alpha": 0.5, "iterations": 1, "model_table": models}))
    argv = [*_fit_argv(db, architecture), "--scheduler", client.scheduler.address, "--job", str(job)]
    assert cli.main(argv) == 0
    summary = dasktrain.model_summary(db, models)
    assert summary["strategy"] == "easgd" and summary["strategy_params"] == {"alpha": 0.5, "beta": 0.9}


def test_a_parameter_the_strategy_does_not_take_is_an_error(db, digits, architecture, tmp_path, capsys):
    job = tmp_path / "fit.yaml"
    job.write_text(yaml.safe_dump({"strategy": "Averaging", "alpha": 0.5, "iterations": 1, "model_table": "m"}))
    assert cli.main([*_fit_argv(db, architecture), "--job", str(job)]) == 2
    assert "Strategy 'averaging' takes no parameter alpha" in capsys.readouterr().err


def test_strategy_parameters_from_the_command_line(db, client, digits, architecture, capsys):
    models = f"{architecture}_models"
    base = [*_fit_argv(db, architecture), "--scheduler", client.scheduler.address, "--iterations", "1"]
    assert cli.main([*base, "--model-table", models, "--strategy-params", "momentum=0.5, lr_scaling=None"]) == 0
    summary = dasktrain.model_summary(db, models)
    assert summary["strategy"] == "slowmo" and summary["strategy_params"]["momentum"] == 0.5
    assert summary["strategy_params"]["lr_scaling"] is None
    argv = [*base, "--model-table", models, "--strategy", "averaging", "--strategy-params", "momentum=0.5"]
    assert cli.main(argv) == 2
    assert "Strategy 'averaging' takes no parameter momentum" in capsys.readouterr().err
