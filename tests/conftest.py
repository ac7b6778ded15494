import pytest

import loaders

pytest_plugins = ["dasktrain.testing"]


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
