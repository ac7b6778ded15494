"""Job files and flags (issue 22, items 2 and 8): values of the wrong type, and bombs, are refused before any work.

Pure unit tests: no database, no cluster (a command that got past its checks would try to connect to one).
"""

import pytest

from dasktrain import cli
from dasktrain._jobs import FIT_KEYS, PREDICT_KEYS, SELECT_KEYS, read_job
from dasktrain.errors import DataError

#: A scoring job that would run, but for the line a test adds.
SCORING = "model_table: models\nsource_table: src\noutput_table: out\n"
FITTING = "data: d\nmodel_arch_table: a\nmodel_id: 1\ncompile: \"loss='mse'\"\niterations: 1\nmodel_table: m\n"


def refused(capsys, command: str, text: str, tmp_path) -> str:
    job = tmp_path / "job.yaml"
    job.write_text(text)
    code = cli.main([command, "--dsn", "postgresql://nobody@127.0.0.1:1/none", "--job", str(job), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and "connect" not in err.lower(), err
    return err


@pytest.mark.parametrize(
    "line, message",
    [
        ('replace: "false"', "replace must be true or false. Received: replace='false' (a str)"),
        ("replace: 'no'", "replace must be true or false. Received: replace='no'"),
        ('skip_nonfinite: "false"', "skip_nonfinite must be true or false"),
        ("replace:", "replace must be true or false. Received: replace=None"),
        ("version: true", "version must be a version number (1, 2, ...) or 'latest'. Received: version=True"),
        ("version: 1.9", "version must be a version number (1, 2, ...) or 'latest'. Received: version=1.9"),
        ("version: newest", "Received: version='newest'"),
        ("batch_size: 1e3", "batch_size must be a whole number"),
    ],
)
def test_a_quoted_false_or_a_fractional_version_in_a_scoring_job_is_refused(capsys, tmp_path, line, message):
    assert message in refused(capsys, "predict", SCORING + line + "\n", tmp_path)


@pytest.mark.parametrize(
    "line, message",
    [
        ('resume: "false"', "resume must be true or false. Received: resume='false' (a str)"),
        ("iterations: 100000000000000000000000000", "iterations must be a whole number from 1 to 1000000"),
        ("iterations: '3'", "iterations must be a whole number from 1 to 1000000. Received: iterations='3'"),
        ("iterations: true", "Received: iterations=True (a bool)"),
        ("seed: -1", "seed must be a whole number >= 0"),
        ("retries: 1000000", "retries must be a whole number from 0 to 100"),
        ("normalizing_const: '255'", "normalizing_const must be a number"),
        ("x: {a: 1}", "x must be a column name or a list of them"),
        ("replicas: many", "replicas must be a whole number >= 1 or 'segments'"),
    ],
)
def test_a_fit_job_with_a_value_of_the_wrong_type_is_refused(capsys, tmp_path, line, message):
    text = FITTING.replace("iterations: 1\n", "") if line.startswith("iterations") else FITTING
    assert message in refused(capsys, "fit", text + line + "\n", tmp_path)


def test_real_booleans_and_numbers_pass(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(SCORING + "replace: true\nskip_nonfinite: false\nversion: 2\nbatch_size: 64\npred_type: 0.5\n")
    assert read_job(str(job), PREDICT_KEYS, "predict")["version"] == 2
    job.write_text(FITTING + "resume: false\nx: [a, b]\nreplicas: segments\nnormalizing_const: 16\ncheckpoint_keep:\n")
    assert read_job(str(job), FIT_KEYS, "fit")["checkpoint_keep"] is None  # None: keep them all, as the API's None
    job.write_text("data: d\nmodel_id: [1, 2]\nR: 9\neta: 3\n")
    assert read_job(str(job), SELECT_KEYS, "select")["model_id"] == [1, 2]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--version", "1.9"], "--version takes a number (1, 2, ...) or 'latest'. Received: '1.9'"),
        (["--version", "0"], "--version takes a number"),
        (["--batch-size", "0"], "--batch-size must be a whole number from 1 to 2147483647. Received: 0"),
    ],
)
def test_flags_are_checked_as_job_keys_are(capsys, argv, message):
    base = ["predict", "--dsn", "postgresql://nobody@127.0.0.1:1/none", "--model-table", "m", "--source", "s"]
    assert cli.main([*base, "--output", "o", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_fit_iterations_from_a_flag_are_bounded(capsys):
    argv = ["fit", "--dsn", "postgresql://nobody@127.0.0.1:1/none", "--data", "d", "--model-arch-table", "a",
            "--model-id", "1", "--compile", "loss='mse'", "--model-table", "m",
            "--iterations", str(10**26)]  # fmt: skip
    assert cli.main(argv) == 2
    assert "--iterations must be a whole number from 1 to 1000000" in capsys.readouterr().err


# -- item 8: bombs -------------------------------------------------------------------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A billion-laughs YAML: each level a list of ``width`` aliases of the one before (``width**levels`` values)."""
    first = "[" + ", ".join(['"lol"'] * width) + "]"
    lines = [f"  - &l0 {first}"]
    for level in range(1, levels):
        lines.append(f"  - &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "x:\n" + "\n".join(lines) + f"\ny: *l{levels - 1}\n"


@pytest.mark.parametrize("key", ["x", "y"])
def test_a_yaml_alias_bomb_is_refused_in_a_short_message(tmp_path, key):
    job = tmp_path / "bomb.yaml"
    text = alias_bomb()
    assert len(text) < 1000
    job.write_text(text if key == "y" else text.replace("\ny: *l8\n", "\n"))
    with pytest.raises(DataError) as caught:
        read_job(str(job), FIT_KEYS, "fit")
    message = str(caught.value)
    assert "more than 100000 values" in message and "aliases" in message
    assert len(message) < 300


def test_a_self_referencing_yaml_value_ends(tmp_path):
    job = tmp_path / "loop.yaml"
    job.write_text("x: &a [*a]\n")
    with pytest.raises(DataError, match="more than 100000 values"):
        read_job(str(job), FIT_KEYS, "fit")


def test_errors_repeat_no_more_than_a_line_of_a_large_value(tmp_path):
    job = tmp_path / "big.yaml"
    job.write_text(FITTING + "name: [" + ", ".join(["abcdefgh"] * 5000) + "]\n")
    with pytest.raises(DataError, match="name must be a string") as caught:
        read_job(str(job), FIT_KEYS, "fit")
    assert len(str(caught.value)) < 300


def test_fit_refuses_years_of_epochs_and_iterations_before_any_work():
    import dasktrain

    model = '{"class_name": "Sequential", "config": {"layers": []}}'
    common = {"x": "x", "y": "y", "compile": "loss='mse'", "db": "postgresql://nobody@127.0.0.1:1/none"}
    with pytest.raises(DataError, match="Expected iterations between 1 and 1000000"):
        dasktrain.fit("nosuch", model, iterations=10**26, **common)
    with pytest.raises(DataError, match="Expected epochs between 1 and 1000000"):
        dasktrain.fit("nosuch", model, iterations=1, fit={"epochs": 2**62}, **common)
    with pytest.raises(DataError, match="Expected resume=True or False. Received: resume='false'"):
        dasktrain.fit("nosuch", model, iterations=1, resume="false", **common)
    with pytest.raises(DataError, match="Expected progress=True or False"):
        dasktrain.fit("nosuch", model, iterations=1, progress="no", **common)


def test_a_huge_search_is_refused_before_any_work():
    import dasktrain

    with pytest.raises(DataError, match="start .* configurations, more than the 10000"):
        dasktrain.hyperband("d", ("a", 1), compile={"loss": "mse"}, R=10**6, eta=2, x="x", y="y", validation="v")
    with pytest.raises(DataError, match="Expected R between 1 and 1000000"):
        dasktrain.hyperband("d", ("a", 1), compile={"loss": "mse"}, R=10**26, x="x", y="y", validation="v")
    with pytest.raises(DataError, match="The grid has 1000000 configurations"):
        dasktrain.model_configs(("a", 1), compile={"loss": "mse", "learning_rate": list(range(1000))},
                                fit={"batch_size": list(range(1, 1001))})  # fmt: skip
    with pytest.raises(DataError, match="n, a whole number from 1 to 10000"):
        dasktrain.model_configs(("a", 1), compile={"loss": "mse"}, search="random", n=10**26)
    with pytest.raises(DataError, match="Expected resume=True or False"):
        dasktrain.hyperband("d", ("a", 1), compile={"loss": "mse"}, R=9, x="x", y="y", validation="v", resume="no")
