"""Resume over an unreadable newest checkpoint (issue 22): it continues from the newest readable one, says so,
and prunes no readable checkpoint."""

import logging

import numpy as np
import pytest
from helpers import COMPILE, mlp

import dasktrain
from dasktrain.models._fit_state import arrays_to_bytes

SOURCE = "fit_digits_train"


def test_resume_passes_over_an_unreadable_newest_checkpoint_and_prunes_no_readable_one(
    db, client, digits, table_name, caplog
):
    kw = dict(x="x", y="y", db=db, client=client, compile=COMPILE, normalizing_const=16.0, progress=False,
              checkpoint=(db, table_name, "c"), checkpoint_keep=2)  # fmt: skip
    dasktrain.fit(SOURCE, mlp(), iterations=2, **kw)
    truncated = arrays_to_bytes({"optimizer_0": np.zeros(64)})[:-30]  # np.load raised a raw BadZipFile
    with db.cursor() as cur:
        cur.execute(f"UPDATE {table_name}_fit_state SET state = %s WHERE version = 2", (truncated,))
    with caplog.at_level(logging.WARNING, logger="dasktrain"):
        result = dasktrain.fit(SOURCE, mlp(), iterations=2, resume=True, **kw)
    assert "resuming 'c' from version 1, the newest that can be read" in caplog.text
    assert [h["iteration"] for h in result.history] == [1, 2]  # iteration 1 came from version 1
    # Nothing was pruned: the resumed run has saved one checkpoint of its own (version 3), fewer than
    # checkpoint_keep, so the readable version 1 it resumed from stays.
    assert [m["version"] for m in dasktrain.list_models(db, table_name)] == [1, 2, 3]


def test_one_fit_per_checkpoint_at_a_time(db, client, digits, table_name):
    from dasktrain._names import TableName
    from dasktrain.errors import DasktrainError
    from dasktrain.io._locks import hold_checkpoint

    kw = dict(x="x", y="y", db=db, client=client, compile=COMPILE, normalizing_const=16.0, progress=False,
              iterations=1, checkpoint=(db, table_name, "c"))  # fmt: skip
    running = db.connection()  # a first fit of checkpoint 'c', still running
    try:
        with running.cursor() as cur:
            assert hold_checkpoint(cur, TableName.parse(table_name), "c")
        running.commit()
        with pytest.raises(DasktrainError, match=f"Another fit is saving checkpoint 'c' in '{table_name}' now"):
            dasktrain.fit(SOURCE, mlp(), resume=True, **kw)
        assert dasktrain.fit(SOURCE, mlp(), **{**kw, "checkpoint": (db, table_name, "other")}).iterations == 1
    finally:
        running.close()
    assert [m["name"] for m in dasktrain.list_models(db, table_name)] == ["other"]  # 'c' saved nothing
    dasktrain.fit(SOURCE, mlp(), resume=True, **kw)  # the first fit has ended: its checkpoint is free
    with db.cursor() as cur:
        assert hold_checkpoint(cur, TableName.parse(table_name), "c")  # and the second let it go
