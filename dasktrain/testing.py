"""Pytest fixtures for testing pipelines against a real database and a real Dask cluster.

Use them in your own tests with ``pytest_plugins = ["dasktrain.testing"]`` in ``conftest.py``.

- ``db``: a :class:`~dasktrain.Database` on ``$DASKTRAIN_TEST_DSN``, or else on an embedded
  PostgreSQL server started for the test session in a temporary folder.
- ``client``: a ``distributed.Client`` on a ``LocalCluster`` of 2 worker processes, 1 thread each.
- ``table_name``: a fresh table name, dropped (with its summary and leaves) after the test.

Fault injection, to check that a pipeline survives what a cluster does to it: :class:`KillWorkerOn`
(a worker plugin that SIGKILLs its own process when a chosen task starts or finishes),
:func:`kill_worker_running`, :func:`backends_waiting` and :func:`wait_until`.

Examples
--------
>>> def test_load(db, table_name):  # doctest: +SKIP
...     loaders.write_arrays(db, table_name, np.zeros((4, 2)))
...     assert dasktrain.read_table(db, table_name).npartitions == 4
"""

from __future__ import annotations

import os
import uuid

import pytest
from psycopg2 import sql

from ._chaos import KillWorkerOn, backends_waiting, kill_worker_running, wait_until
from .io._database import Database, connect

__all__ = [
    "KillWorkerOn",
    "backends_waiting",
    "client",
    "db",
    "drop_tables",
    "kill_worker_running",
    "table_exists",
    "table_name",
    "wait_until",
]

TEST_DSN_ENV = "DASKTRAIN_TEST_DSN"


@pytest.fixture(scope="session")
def db(tmp_path_factory) -> Database:
    """The database tests run against (see the module docstring)."""
    dsn = os.environ.get(TEST_DSN_ENV)
    if not dsn:
        from .io._embedded import embedded_dsn

        dsn = embedded_dsn(tmp_path_factory.mktemp("dasktrain-pg"), announce=False)
    return connect(dsn)


@pytest.fixture(scope="session")
def client():
    """A Dask client on a LocalCluster of 2 worker processes with 1 thread each."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as c:
            yield c


@pytest.fixture
def table_name(db: Database):
    """A unique table name; the table, its ``_summary`` and its leaves are dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_tables(db, name)


def table_exists(db: Database, name: str) -> bool:
    """Whether a table (or view) called ``name`` exists, as the search path finds it."""
    with db.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        return cur.fetchone()[0]


def drop_tables(db: Database, name: str) -> None:
    """Drop ``name`` and every table whose name starts with ``name_`` (summary, leaves, versions)."""
    with db.cursor() as cur:
        cur.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND (c.relname = %s OR c.relname LIKE %s) "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            (name, name.replace("_", r"\_") + r"\_%"),
        )
        for schema, relname in cur.fetchall():
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(schema, relname)))
