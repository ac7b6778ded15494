import psycopg2
import pytest

import dasktrain
from dasktrain.errors import DatabaseConnectionError
from dasktrain.io._dialect import POSTGRESQL


def test_connect_detects_the_dialect_once(db):
    assert db.dialect.name == POSTGRESQL
    assert db.dialect.server_version_num >= 140000
    again = dasktrain.connect(db)
    assert again is db


def test_connect_reads_the_dsn_from_the_environment(db, monkeypatch):
    monkeypatch.setenv("DASKTRAIN_DSN", db.dsn)
    handle = dasktrain.connect()
    with handle.cursor() as cur:
        cur.execute("SELECT 41 + 1")
        assert cur.fetchone() == (42,)


def test_a_dsn_that_cannot_connect_names_it_without_the_password():
    dsn = "host=127.0.0.1 port=1 user=ann password=hunter2 dbname=nowhere connect_timeout=2"
    with pytest.raises(DatabaseConnectionError) as info:
        dasktrain.connect(dsn)
    message = str(info.value)
    assert "hunter2" not in message
    assert "port=1" in message and "user=ann" in message


def test_redact_dsn_removes_passwords_from_uris_too():
    assert "s3cret" not in dasktrain.redact_dsn("postgresql://ann:s3cret@db:5432/x")
    assert "s3cret" not in repr(dasktrain.Database("password=s3cret host=h", _dialect()))


def _dialect():
    return dasktrain.Dialect(POSTGRESQL, 160000)


def test_cursor_rolls_back_on_error(db, table_name):
    with pytest.raises(psycopg2.errors.DivisionByZero), db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (a int)")
        cur.execute("SELECT 1 / 0")
    with db.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (table_name,))
        assert cur.fetchone() == (None,)


@pytest.mark.parametrize(
    "dsn, secret",
    [
        ("postgresql://u:s3cretpw@[127.0.0.1", "s3cretpw"),  # libpq echoes the URI in its error
        ("postgresql://u:s3cret%zzpw@localhost/db", "s3cret"),  # and the bad percent-encoded token
        ("host=localhost port=1 user=u password='s3 cret' connect_timeout=1", "s3 cret"),
    ],
)
def test_malformed_or_refused_dsns_never_show_the_password(dsn, secret, monkeypatch, capsys):
    from dasktrain import cli

    with pytest.raises(DatabaseConnectionError) as info:
        dasktrain.connect(dsn)
    assert secret not in str(info.value) and "s3" not in str(info.value)
    assert cli.main(["segments", "t", "--dsn", dsn]) == 2
    monkeypatch.setenv("DASKTRAIN_DSN", dsn)
    assert cli.main(["segments", "t"]) == 2
    err = capsys.readouterr().err
    assert "s3" not in err and err.count("error:") == 2


def test_redact_text_hides_passwords_in_any_message():
    from dasktrain.io._database import redact_text

    assert redact_text("password=abc host=x") == "password=*** host=x"
    assert redact_text("at postgresql://ann:pw@db/x:") == "at postgresql://ann:***@db/x:"
    assert redact_text("echoed s3cret%zz here", "postgresql://a:s3cret%zz@h/db") == "echoed *** here"


def test_retried_work_that_retries_inside_is_retried_by_the_outer_call_only():
    from dasktrain.errors import ConnectionLostError
    from dasktrain.io._retry import retrying

    calls = []

    def inner():
        calls.append("inner")
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    with pytest.raises(ConnectionLostError, match="Saving failed: the database connection broke on all 3 tries"):
        retrying("Saving", lambda: retrying("Connecting", inner), attempts=3, first_delay=0.01)
    assert calls == ["inner"] * 3  # not 3 x 5


@pytest.mark.parametrize(
    "dsn",
    [
        "not a dsn",
        "postgresql://u:s3cretpw@localhost:5432/db?bogus=1",  # libpq cannot parse it
        "host=localhost port=notaport password=s3cretpw",  # libpq parses it, then refuses the port
        "host=no-such-host.invalid user=u password=s3cretpw connect_timeout=2",
    ],
)
def test_a_dsn_that_cannot_work_fails_at_once_in_one_line(dsn, caplog):
    with caplog.at_level("WARNING", logger="dasktrain"), pytest.raises(DatabaseConnectionError) as info:
        dasktrain.connect(dsn)
    message = str(info.value)
    assert "retrying" not in caplog.text  # tried once: no retry was announced
    assert "\n" not in message and "s3cretpw" not in message
    assert "Could not" in message and "dsn=None" in message  # the CLI words the last part as --dsn


@pytest.mark.parametrize("setting", [{"dbname": "no_such_database"}, {"user": "no_such_role"}])
def test_a_missing_database_or_role_fails_at_once(db, setting, caplog):
    dsn = psycopg2.extensions.make_dsn(db.dsn, **setting)
    with caplog.at_level("WARNING", logger="dasktrain"), pytest.raises(DatabaseConnectionError) as info:
        dasktrain.connect(dsn)
    assert "retrying" not in caplog.text
    assert "does not exist" in str(info.value) and list(setting.values())[0] in str(info.value)


def test_a_refused_connection_is_retried_with_the_database_reason_only(caplog):
    from dasktrain.io._database import open_connection
    from dasktrain.io._retry import retrying

    dsn = "host=127.0.0.1 port=1 password=s3cretpw connect_timeout=2"
    with caplog.at_level("WARNING", logger="dasktrain"), pytest.raises(DatabaseConnectionError, match="2 tries"):
        retrying("Connecting to the database", lambda: open_connection(dsn), attempts=2, first_delay=0.01)
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 1 and "Connection refused" in retries[0]
    assert "dsn=None" not in retries[0] and "s3cretpw" not in retries[0]  # no Python advice on a command line


def test_the_command_line_prints_one_line_for_a_dsn_it_cannot_parse():
    import subprocess
    import sys

    dsn = "host=localhost port=notaport"
    run = subprocess.run(
        [sys.executable, "-m", "dasktrain.cli", "models", "list", "--model-table", "m", "--dsn", dsn],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert 'invalid integer value "notaport"' in lines[0] and "--dsn" in lines[0] and "dsn=None" not in lines[0]
