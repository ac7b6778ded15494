import uuid

import psycopg2
import pytest
from psycopg2 import sql

import loaders

pytest_plugins = ["dasktrain.testing"]

#: The longest test files, longest first: started first, so that with two test processes
#: (pytest -n 2, in this order with --no-loadscope-reorder) the suite does not end waiting for one of them.
LONGEST_FIRST = ["test_readme.py", "test_faults.py", "test_docs.py", "test_demo.py", "test_k8s.py"]


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file keeps its own order


@pytest.fixture(scope="session")
def digits(db):
    """scikit-learn's digits in two tables of 2 segments: fit_digits_train (1,400 rows) and fit_digits_test."""
    x, y = loaders.read_digits()
    loaders.write_arrays(db, "fit_digits_train", x[:1400], y[:1400], segments=2, if_exists="replace")
    loaders.write_arrays(db, "fit_digits_test", x[1400:], y[1400:], segments=2, if_exists="replace")
    yield x, y
    from dasktrain.testing import drop_tables  # imported late: pytest registers the plugin first

    drop_tables(db, "fit_digits_train")
    drop_tables(db, "fit_digits_test")


@pytest.fixture(scope="session")
def trained(db, client, digits):
    """A small model trained on fit_digits_train and saved as 'digits_mlp' in the table 'scoring_models'."""
    from helpers import COMPILE, mlp

    import dasktrain
    from dasktrain.testing import drop_tables

    result = dasktrain.fit(
        "fit_digits_train", mlp(), x="x", y="y", db=db, client=client, compile=COMPILE, iterations=3,
        normalizing_const=16.0, progress=False,
    )  # fmt: skip
    dasktrain.save_model(db, "scoring_models", result, name="digits_mlp")
    yield result
    drop_tables(db, "scoring_models")


@pytest.fixture
def own_database(db):
    """A new database on the test server, dropped afterwards: the README's tables stay out of other tests."""
    name = f"readme_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(db.dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg2.extensions.parse_dsn(db.dsn)
    params["dbname"] = name
    try:
        yield psycopg2.extensions.make_dsn(**params)
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()
