"""The loader programs on small real inputs written by the tests."""

import gzip
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dasktrain
from dasktrain.io._tensor_column import series_to_numpy
from loaders import cifar10, digits, idx, images

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _read(db, table):
    return dasktrain.read_table(db, table).compute(scheduler="sync").sort_values("id").reset_index(drop=True)


def _write_idx(path, array, code):
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_program_loads_images_and_labels(db, table_name, tmp_path, capsys, suffix):
    x = np.random.default_rng(0).integers(0, 256, (12, 28, 28), dtype=np.uint8)
    y = (np.arange(12) % 10).astype(np.uint8)
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", x, 0x08)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", y, 0x08)
    code = idx.main(["--dir", str(tmp_path), "--dsn", db.dsn, "--table", table_name, "--segments", "2", "--quiet"])
    assert code == 0
    assert f"loaded 12 rows into {table_name}" in capsys.readouterr().out
    df = _read(db, table_name)
    assert np.array_equal(series_to_numpy(df["x"]), x) and np.array_equal(df["y"], y)


def test_idx_reads_other_value_types(tmp_path):
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    _write_idx(tmp_path / "f.idx", values, 0x0D)
    assert np.array_equal(idx.read_idx(tmp_path / "f.idx"), values)


def test_idx_program_reports_a_bad_file_in_one_line(db, table_name, tmp_path, capsys):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"not an idx file")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    code = idx.main(["--dir", str(tmp_path), "--dsn", db.dsn, "--table", table_name, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "not an IDX file" in err and err.count("\n") == 1


def test_cifar10_program_loads_batches_channels_last(db, table_name, tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": data, b"labels": [0, 1, 2, 3, 4, 5]}, f, protocol=2)
    with open(tmp_path / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"plane", b"car", b"bird", b"cat", b"deer", b"dog"]}, f, protocol=2)
    assert cifar10.main([str(tmp_path), "--dsn", db.dsn, "--table", table_name, "--quiet"]) == 0
    df = _read(db, table_name)
    x = series_to_numpy(df["x"])
    assert x.shape == (6, 32, 32, 3)
    assert np.array_equal(x[2, :, :, 1], data[2, 1024:2048].reshape(32, 32))  # green plane of image 2
    with db.cursor() as cur:
        cur.execute(f"SELECT class_values FROM {table_name}_summary")
        assert cur.fetchone()[0] == ["plane", "car", "bird", "cat", "deer", "dog"]


def test_cifar10_batches_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        cifar10.read_batch(tmp_path / "data_batch_1")


def test_image_folder_program_resizes_every_image(db, table_name, tmp_path):
    for name, color in [("cats", (255, 0, 0)), ("dogs", (0, 0, 255))]:
        (tmp_path / name).mkdir()
        Image.new("RGB", (40, 30), color).save(tmp_path / name / "a.png")
        Image.new("RGB", (12, 50), color).save(tmp_path / name / "b.jpg", quality=100)
        (tmp_path / name / "notes.txt").write_text("not an image")
    args = [str(tmp_path), "--size", "16x8", "--dsn", db.dsn, "--table", table_name, "--quiet"]
    assert images.main(args) == 0
    df = _read(db, table_name)
    x = series_to_numpy(df["x"])
    assert x.shape == (4, 8, 16, 3)
    assert df["y"].tolist() == [0, 0, 1, 1]
    assert x[0, :, :, 0].min() > 240 and x[3, :, :, 2].min() > 240
    with db.cursor() as cur:
        cur.execute(f"SELECT class_values FROM {table_name}_summary")
        assert cur.fetchone()[0] == ["cats", "dogs"]


def test_image_sizes_are_checked():
    assert images.parse_size("32") == (32, 32)
    with pytest.raises(ValueError, match="64x48"):
        images.parse_size("big")


def test_digits_program(db, table_name, capsys):
    assert digits.main(["--dsn", db.dsn, "--table", table_name, "--segments", "3", "--quiet"]) == 0
    assert "rows/s" in capsys.readouterr().out
    assert dasktrain.read_table(db, table_name).npartitions == 3
    assert len(_read(db, table_name)) == 1797


def test_existing_table_is_an_error_in_the_program_unless_replace(db, table_name, capsys):
    assert digits.main(["--dsn", db.dsn, "--table", table_name, "--quiet"]) == 0
    assert digits.main(["--dsn", db.dsn, "--table", table_name, "--quiet"]) == 2
    assert "--replace" in capsys.readouterr().err
    assert digits.main(["--dsn", db.dsn, "--table", table_name, "--quiet", "--replace"]) == 0


@pytest.mark.parametrize("module", ["idx", "cifar10", "images", "digits"])
def test_every_program_has_help(module):
    out = subprocess.run(
        [sys.executable, "-m", f"loaders.{module}", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--dsn", "--table", "--segments", "example:"):
        assert option in out


@pytest.mark.skipif(not FASHION.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_test_split_loads_from_the_debian_package(db, table_name):
    assert idx.main(["--split", "test", "--dsn", db.dsn, "--table", table_name, "--quiet"]) == 0
    segs = dasktrain.segments(db, table_name)
    assert len(segs) == 4 and sum(s.rows for s in segs) == 10000
    with db.cursor() as cur:
        cur.execute(f"SELECT class_values[10] FROM {table_name}_summary")
        assert cur.fetchone()[0] == "Ankle boot"
