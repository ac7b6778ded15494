"""`dasktrain demo`, end to end, on the test database."""

import pytest

import dasktrain
from dasktrain import cli
from dasktrain.testing import drop_tables, table_exists


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
        assert models[-1]["strategy"] == "slowmo" and models[-1]["num_iterations"] == 2
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


@pytest.mark.slow
def test_demo_falls_back_to_digits_and_says_so(db, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("loaders.idx.FASHION_MNIST_DIR", str(tmp_path))  # as if the package were not installed
    try:
        argv = [
            "demo",
            "--dsn",
            db.dsn,
            "--iterations",
            "6",
            "--plot",
            str(tmp_path / "d.png"),
        ]
        argv.append("--quiet")
        assert cli.main(argv) == 0
        out = capsys.readouterr().out
        assert "uses scikit-learn's digits instead" in out
        assert float(out.split("test accuracy: ")[1].split()[0]) > 0.5  # 10 classes: chance is 0.1
        assert dasktrain.list_models(db, "demo_models")[-1]["name"] == "digits_cnn"
    finally:
        for table in ("demo_models", "demo_digits_train", "demo_digits_test"):
            drop_tables(db, table)


def test_a_data_dir_without_fashion_mnist_is_an_error_naming_the_files(db, tmp_path, capsys):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")  # one file of four is not Fashion-MNIST
    assert cli.main(["demo", "--dsn", db.dsn, "--data-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"--data-dir {tmp_path} holds no Fashion-MNIST files" in err
    assert "t10k-labels-idx1-ubyte" in err
    assert not table_exists(db, "demo_digits_train")


def test_demo_refuses_an_unknown_strategy(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--strategy", "median"])
    assert "invalid choice: 'median'" in capsys.readouterr().err
