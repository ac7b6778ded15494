"""Stored models as the database holds them (issue 22): a data table is no model table, version numbers are
real whole numbers given once, and a corrupted or crafted stored state is a DataError naming its version."""

import io
import zipfile

import numpy as np
import pytest
from helpers import mlp

import dasktrain
from dasktrain.errors import DataError, SchemaError
from dasktrain.models._fit_state import ModelState, ReplicaState, arrays_from_bytes, arrays_to_bytes
from dasktrain.models._model_store import load_result

SOURCE = "fit_digits_train"


@pytest.fixture
def stored(db, trained, table_name):
    """The trained model saved twice in this test's own model table, version 2 with a fit state."""
    dasktrain.save_model(db, table_name, trained, name="m")
    state = ReplicaState(3, [np.zeros(4, np.float32), np.array(3)])
    dasktrain.save_model(db, table_name, trained, name="m", replica_states={0: state})
    return table_name


@pytest.mark.parametrize("call", ["list_models", "load_model", "model_summary", "delete_model"])
def test_a_data_table_is_not_a_model_table(db, digits, call):
    with pytest.raises(SchemaError, match=f"Table '{SOURCE}' is not a model table"):
        if call == "list_models":
            dasktrain.list_models(db, SOURCE)
        elif call == "delete_model":
            dasktrain.delete_model(db, SOURCE, "m")
        else:
            getattr(dasktrain, call)(db, SOURCE)


@pytest.mark.parametrize("version", [True, 1.9, "abc", "1", 0, -2])
@pytest.mark.parametrize("call", ["load_model", "model_summary", "delete_model"])
def test_a_version_is_a_whole_number_not_a_truthy_value(db, stored, call, version):
    with pytest.raises(DataError, match=r"Expected a positive integer version\. Received: version="):
        getattr(dasktrain, call)(db, stored, "m", version=version)
    assert [m["version"] for m in dasktrain.list_models(db, stored)] == [1, 2]  # nothing was deleted


def test_a_deleted_version_number_is_never_given_again(db, trained, stored):
    assert dasktrain.delete_model(db, stored, "m", version=2) == 1
    assert dasktrain.save_model(db, stored, trained, name="m") == 3
    assert dasktrain.delete_model(db, stored, "m") == 2
    assert dasktrain.save_model(db, stored, trained, name="m") == 4
    assert [m["version"] for m in dasktrain.list_models(db, stored)] == [4]


def test_a_search_tables_versions_are_listed(db, client, digits, table_name):
    configs = dasktrain.model_configs([mlp()], compile={"optimizer": "adam", "loss": "sparse_categorical_crossentropy"})
    search = dasktrain.fit_multiple(SOURCE, configs, x="x", y="y", iterations=1, db=db, client=client,
                                    progress=False)  # fmt: skip
    dasktrain.save_models(db, table_name, search, name="s")
    dasktrain.save_models(db, table_name, search, name="s")
    dasktrain.delete_model(db, table_name, "s", version=2)
    assert dasktrain.save_models(db, table_name, search, name="s") == 3
    listed = dasktrain.list_models(db, table_name)
    assert [(m["name"], m["version"], m["status"]) for m in listed] == [("s", 1, None), ("s", 3, None)]
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table_name}_info WHERE version = 2")
        assert cur.fetchone()[0] == 0


def _deflated_npz(name: str, array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, array)
    return buffer.getvalue()


def test_a_state_that_would_unpack_to_far_more_than_it_holds_is_refused_unread():
    bomb = _deflated_npz("optimizer_0", np.zeros(50_000_000, np.uint8))
    assert len(bomb) < 100_000
    with pytest.raises(DataError, match=r"of \d+ bytes would unpack to 50000128 bytes"):
        ReplicaState.from_bytes(bomb, 1, 0)


def _object_array() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, optimizer_0=np.array([{"a": 1}], dtype=object))
    return buffer.getvalue()


def _huge_header() -> bytes:
    data = bytearray(arrays_to_bytes({"optimizer_0": np.zeros(4)}))
    at = data.find(b"(4,)")
    data[at : at + 4] = b"(9,)"  # more values than the member holds, same header length
    return bytes(data)


CORRUPT_STATES = {
    "not a zip archive": b"garbage",
    "a truncated archive": arrays_to_bytes({"optimizer_0": np.zeros(64)})[:-30],
    "a gap in the numbering": arrays_to_bytes({"optimizer_0": np.zeros(2), "optimizer_2": np.zeros(2)}),
    "an object array": _object_array(),
    "a header promising more than is there": _huge_header(),
}


@pytest.mark.parametrize("data", CORRUPT_STATES.values(), ids=CORRUPT_STATES.keys())
def test_a_corrupted_fit_state_is_a_data_error_naming_the_version(db, stored, data):
    with db.cursor() as cur:
        cur.execute(f"UPDATE {stored}_fit_state SET state = %s WHERE segment = 0", (data,))
    with pytest.raises(DataError, match=rf"fit state of model 'm' version 2 in '{stored}_fit_state' \(replica 0\)"):
        load_result(db, stored, "m")
    assert load_result(db, stored, "m", 1).replica_states is None  # the other version still reads


@pytest.mark.parametrize(
    "column, value",
    [("strategy_params", "[1, 2]"), ("history", '{"a": 1}'), ("history", '[{"iteration": 1}]'), ("history", "[1]")],
)
def test_a_corrupted_summary_is_a_data_error_naming_the_version(db, stored, column, value):
    with db.cursor() as cur:
        cur.execute(f"UPDATE {stored}_summary SET {column} = %s WHERE version = 2", (value,))
    with pytest.raises(DataError, match=f"model 'm' version 2 in '{stored}' is"):
        load_result(db, stored, "m")


def test_a_model_state_without_visits_is_a_data_error():
    with pytest.raises(DataError, match="no whole number of visits"):
        ModelState.from_bytes(arrays_to_bytes({"weights_0": np.zeros(2), "visits": np.zeros(3)}))
    assert arrays_from_bytes(arrays_to_bytes({"a": np.asfortranarray(np.eye(2)[:, :1])}))["a"].shape == (2, 1)
