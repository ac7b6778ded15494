"""`dasktrain demo`, end to end, on the test database."""

import pytest

import dasktrain
from dasktrain import cli
from dasktrain.testing import drop_tables


@pytest.mark.slow
def test_demo_trains_saves_and_scores(db, tmp_path, capsys):
    plot = tmp_path / "demo.png"
    try:
        code = cli.main(["demo", "--dsn", db.dsn, "--iterations", "2", "--plot", str(plot), "--quiet"])
        out = capsys.readouterr().out
        assert code == 0
        accuracy = float(out.split("test accuracy: ")[1].split()[0])
        assert accuracy > 0.6  # 10 classes: chance is 0.1
        models = dasktrain.list_models(db, "demo_models")
        assert models[-1]["strategy"] == "averaging" and models[-1]["num_iterations"] == 2
        assert plot.read_bytes()[:4] == b"\x89PNG"
    finally:
        for table in (
            "demo_models",
            "demo_fashion_mnist_train",
            "demo_fashion_mnist_test",
            "demo_digits_train",
            "demo_digits_test",
        ):
            drop_tables(db, table)


def test_demo_refuses_an_unknown_strategy(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--strategy", "median"])
    assert "invalid choice: 'median'" in capsys.readouterr().err
