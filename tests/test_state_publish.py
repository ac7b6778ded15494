"""predict_table reports success only when its rows are in the output (issue 22), against the real database:
the publish is held with real locks, its connection terminated, its staging dropped as the next job would."""

import pytest
from chaos import in_background

import dasktrain
from dasktrain._names import TableName
from dasktrain.errors import SchemaError, TableExistsError
from dasktrain.io._locks import lock_for_creation
from dasktrain.testing import backends_waiting, table_exists, wait_until

SOURCE = "fit_digits_test"


def _staging_tables(db) -> list[str]:
    with db.cursor() as cur:
        cur.execute(r"SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'dasktrain\_staging\_%'")
        return sorted(r[0] for r in cur.fetchall())


def _count(db, table) -> int:
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        return cur.fetchone()[0]


def _hold_publish(db, output: str, lock_output: bool):
    """A connection holding what publishing ``output`` waits for: the right to create it (and the table)."""
    locker = db.connection()
    cur = locker.cursor()
    lock_for_creation(cur, TableName.parse(output))
    if lock_output:
        cur.execute(f"LOCK TABLE {output} IN ACCESS SHARE MODE")  # earlier versions waited at DROP TABLE
    return locker


def test_a_publish_whose_staging_was_dropped_meanwhile_is_not_reported_as_done(db, client, trained, table_name):
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} AS SELECT g AS id FROM generate_series(1, 3) g")
    locker = _hold_publish(db, table_name, lock_output=True)

    def lose_the_publish():
        try:
            (publisher,) = wait_until(lambda: backends_waiting(db, ""), timeout=120)
            with db.cursor() as cur:
                cur.execute("SET lock_timeout = '20s'")
                cur.execute("SELECT pg_terminate_backend(%s)", (publisher,))  # the restart breaks the publish ...
                for staging in _staging_tables(db):  # ... and the next job drops its staging as left behind
                    cur.execute(f"DROP TABLE {staging}")
        finally:
            locker.close()  # the retry goes on

    blip = in_background(lose_the_publish)
    try:
        with pytest.raises(SchemaError, match=f"Nothing was published into '{table_name}'.*keeps its previous rows"):
            dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, replace=True, client=client,
                                    progress=False)  # fmt: skip
    finally:
        blip.join()
        locker.close()
    assert blip.error is None
    assert _count(db, table_name) == 3 and _staging_tables(db) == []


def test_a_second_job_creating_the_same_new_output_is_refused_before_any_work(db, client, trained, table_name):
    from dasktrain.io._locks import claim_output

    claimer = db.connection()
    try:
        with claimer.cursor() as cur:
            assert claim_output(cur, TableName.parse(table_name))  # a first job, still running
        with pytest.raises(TableExistsError, match=f"Another job is writing the new table '{table_name}' now"):
            dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, client=client, progress=False)
        assert _staging_tables(db) == []
    finally:
        claimer.close()
    assert dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, client=client, progress=False) == 397


def test_an_output_created_while_the_job_ran_is_a_clear_error_at_publish(db, client, trained, table_name):
    def create_the_output_meanwhile():
        (staging,) = wait_until(lambda: [t for t in _staging_tables(db) if not t.endswith("_done")], timeout=120)
        locker = _hold_publish(db, table_name, lock_output=False)
        try:
            locker.cursor().execute(f"LOCK TABLE {staging} IN ACCESS SHARE MODE")  # earlier versions: at RENAME
            with db.cursor() as cur:
                cur.execute(f"CREATE TABLE {table_name} (id bigint)")
            wait_until(lambda: backends_waiting(db, ""), timeout=120)
        finally:
            locker.close()

    blip = in_background(create_the_output_meanwhile)
    try:
        with pytest.raises(TableExistsError, match=f"'{table_name}' was created by another job while this one ran"):
            dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, client=client, progress=False)
    finally:
        blip.join()
    assert blip.error is None
    assert table_exists(db, table_name) and _count(db, table_name) == 0 and _staging_tables(db) == []
