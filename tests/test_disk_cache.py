"""cache="disk": segments streamed from COPY into files on the workers' disks, read a batch at a time."""

import glob
import os

import numpy as np
import pytest
from helpers import COMPILE, mlp

import dasktrain
import loaders
from dasktrain.errors import DataError
from dasktrain.io import _disk
from dasktrain.io._read import plan_reads
from dasktrain.io._segment_reader import read_segment_to_disk
from dasktrain.testing import wait_until
from dasktrain.train._cache import choose_cache


def fit(db, client, cache, **kw):
    kw = {"iterations": 2, "seed": 7, "fit": {"batch_size": 64}} | kw
    return dasktrain.fit(
        "fit_digits_train", mlp(), x="x", y="y", db=db, client=client, compile=COMPILE,
        normalizing_const=16.0, progress=False, cache=cache, **kw,
    )  # fmt: skip


def segment_files(client) -> list[str]:
    """Every segment file in the workers' local directories."""
    found = client.run(
        lambda dask_worker: glob.glob(os.path.join(dask_worker.local_directory, "dasktrain-segments", "*"))
    )
    return sorted(f for files in found.values() for f in files)


def test_disk_cache_trains_exactly_like_memory(db, client, digits):
    in_memory = fit(db, client, "memory", validation="fit_digits_test")
    on_disk = fit(db, client, "disk", validation="fit_digits_test")
    for a, b in zip(in_memory.weights, on_disk.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert on_disk.history[-1]["validation"] == in_memory.history[-1]["validation"]
    assert on_disk.num_rows == in_memory.num_rows == 1400


def test_disk_cache_with_short_rounds_matches_memory(db, client, digits):
    in_memory = fit(db, client, "memory", sync_every=3, iterations=3)
    on_disk = fit(db, client, "disk", sync_every=3, iterations=3)
    for a, b in zip(in_memory.weights, on_disk.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_segment_files_are_deleted_after_the_fit(db, client, digits):
    import gc

    before = set(segment_files(client))
    fit(db, client, "disk", iterations=1)

    def gone() -> bool:
        client.run(gc.collect)
        return not set(segment_files(client)) - before

    assert wait_until(gone, timeout=30)


def test_a_segment_streams_through_small_chunks(db, digits, tmp_path, monkeypatch):
    """Decoding in chunks of a few rows gives the same arrays as one in-memory read."""
    monkeypatch.setattr(_disk, "CHUNK_BYTES", 1000)  # about 10 rows of 8×8 pixels
    reads = plan_reads(db, "fit_digits_train", columns=["id", "x", "y"])
    segment, query, _, _ = reads.parts[1]
    X, kept = read_segment_to_disk(query, db.dsn, reads.specs, ["x"], directory=str(tmp_path))
    expected = reads.reader(reads.parts[1])
    want = dasktrain.to_arrays(expected, x="x", y="y")
    assert X.dtype == np.uint8 and X.shape == (len(expected), 8, 8)
    np.testing.assert_array_equal(X[0 : len(X)], want[0])
    np.testing.assert_array_equal(kept["y"], want[1])
    np.testing.assert_array_equal(kept["id"], expected["id"].to_numpy())
    shuffled = np.random.default_rng(0).permutation(len(X))[:50]
    np.testing.assert_array_equal(X[shuffled], want[0][shuffled])
    path = X.path
    del X
    assert not os.path.exists(path), "the array that wrote the file deletes it"


def test_plain_columns_stack_side_by_side(db, table_name, tmp_path):
    dasktrain_db = db
    with dasktrain_db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id bigint, a real, b real, y integer)")
        cur.execute(f"INSERT INTO {table_name} SELECT g, g, -g, g % 2 FROM generate_series(1, 50) g")
    reads = plan_reads(db, table_name, columns=["a", "b", "y"])
    _, query, _, _ = reads.parts[0]
    X, kept = read_segment_to_disk(query, db.dsn, reads.specs, ["a", "b"], directory=str(tmp_path))
    want, labels = dasktrain.to_arrays(reads.reader(reads.parts[0]), x=["a", "b"], y="y")
    np.testing.assert_array_equal(X[0:50], want)
    np.testing.assert_array_equal(kept["y"], labels)


def test_rows_of_varying_width_are_refused_and_leave_no_file(db, table_name, tmp_path):
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (x real, y integer)")
        cur.execute(f"INSERT INTO {table_name} VALUES (1, 0), (NULL, 1)")
    reads = plan_reads(db, table_name)
    _, query, _, _ = reads.parts[0]
    with pytest.raises(DataError, match="cache='memory'"):
        read_segment_to_disk(query, db.dsn, reads.specs, ["x"], directory=str(tmp_path))
    assert os.listdir(os.path.join(tmp_path, "dasktrain-segments")) == []


def test_disk_cache_needs_a_table(db, client, digits):
    frame = dasktrain.read_table(db, "fit_digits_train")
    with pytest.raises(DataError, match="needs a table name"):
        dasktrain.fit(frame, mlp(), x="x", y="y", compile=COMPILE, iterations=1, cache="disk", client=client)
    with pytest.raises(DataError, match="cache='auto', 'memory' or 'disk'"):
        fit(db, client, "ssd")
    with pytest.raises(DataError, match="Centralized"):
        fit(db, client, "disk", strategy=dasktrain.Centralized())


def test_auto_goes_to_disk_when_segments_outgrow_the_workers(db, digits):
    reads = plan_reads(db, "fit_digits_train", columns=["x", "y"])
    roomy = {"w1": {"memory_limit": 2**30, "metrics": {"memory": 200 * 2**20}}}
    assert choose_cache("auto", reads, ["x"], roomy) == "memory"
    tight = {"w1": {"memory_limit": 2**30, "metrics": {"memory": 2**30 * 0.6 - 1000}}}
    assert choose_cache("auto", reads, ["x"], tight) == "disk"
    assert choose_cache("auto", reads, ["x"], {"w1": {"memory_limit": 0}}) == "memory"  # no limit
    assert choose_cache("auto", None, ["x"], tight) == "memory"  # a DataFrame is already in memory
    assert choose_cache("disk", None, ["x"], tight) == "memory"  # validation given as a DataFrame
    assert choose_cache("memory", reads, ["x"], tight) == "memory"


def test_disk_array_reads_what_numpy_reads(tmp_path):
    values = np.arange(5 * 6, dtype=np.float32).reshape(5, 6)
    path = str(tmp_path / "rows.bin")
    values.tofile(path)
    rows = _disk.DiskArray(path, np.float32, (5, 6))
    for index in ([4, 0, 1, 2], [3], [], [-1, 2]):
        np.testing.assert_array_equal(rows[np.array(index, dtype=np.int64)], values[index])
    np.testing.assert_array_equal(rows[1:4], values[1:4])
    np.testing.assert_array_equal(rows[::2], values[::2])
    np.testing.assert_array_equal(rows.reshape(5, 2, 3, 1)[2:3], values[2:3].reshape(1, 2, 3, 1))
    with pytest.raises(IndexError):
        rows[np.array([5])]
    with pytest.raises(ValueError, match="keep their size"):
        rows.reshape(5, 7)


def test_disk_array_copies_read_after_the_writer_is_gone(tmp_path):
    import pickle

    path = str(tmp_path / "rows.bin")
    np.arange(8, dtype=np.int16).tofile(path)
    writer = _disk.DiskArray(path, np.int16, (4, 2), owner=True)
    copy = pickle.loads(pickle.dumps(writer))
    del writer
    assert not os.path.exists(path)
    assert copy[2:4].tolist() == [[4, 5], [6, 7]]


def test_loaders_tables_train_on_disk_with_several_segments(db, client, table_name):
    """A fresh table of 4 segments, 28×28 uint8 images, trained from disk with the default strategy."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 255, size=(400, 28, 28), dtype=np.uint8)
    y = (x.mean(axis=(1, 2)) > 127).astype(np.int64)
    loaders.write_arrays(db, table_name, x, y, segments=4, if_exists="replace")
    import keras

    model = keras.Sequential(
        [keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )
    start = model.get_weights()
    results = {
        cache: dasktrain.fit(
            table_name, model, x="x", y="y", db=db, client=client, compile=COMPILE, iterations=2, seed=3,
            normalizing_const=255.0, progress=False, cache=cache, initial_weights=start,
        )  # fmt: skip
        for cache in ("disk", "memory")
    }
    result = results["disk"]
    assert result.num_rows == 400 and result.num_segments == 4 and result.num_replicas == 2
    assert all(entry["rows"] == 400 for entry in result.history)
    # Two segments on disk stream into each replica, shuffled together as two in memory are.
    for a, b in zip(result.weights, results["memory"].weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_segments_on_disk_join_a_replica_as_files_read_a_batch_at_a_time(tmp_path):
    from dasktrain.train._segment_data import SegmentData

    parts = []
    for k in range(3):
        values = np.arange(k * 40, k * 40 + 40, dtype=np.float32).reshape(10, 4)
        path = str(tmp_path / f"segment{k}")
        values.tofile(path)
        parts.append(SegmentData(_disk.DiskArray(path, np.float32, (10, 4)), np.arange(10) + 10 * k))
    replica = SegmentData.concat(parts)
    assert all(isinstance(a, _disk.DiskArray) for a in replica.X.arrays)  # nothing loaded whole
    order = np.random.default_rng(0).permutation(30)[:8]
    np.testing.assert_array_equal(replica.features(order)[:, 0], order * 4)
    np.testing.assert_array_equal(replica.y[order], order)


def test_validation_given_as_a_frame_stays_in_memory_beside_a_disk_cache(db, client, digits):
    validation = dasktrain.read_table(db, "fit_digits_test", columns=["x", "y"])
    on_disk = fit(db, client, "disk", iterations=1, validation=validation)
    in_memory = fit(db, client, "memory", iterations=1, validation=validation)
    assert on_disk.history[-1]["validation"] == in_memory.history[-1]["validation"]
