"""A second embedded server, started here: its announcement, and a password it checks.

The session's server trusts every local connection; this one asks one role for its password, so
that a wrong password is a real authentication failure.
"""

import psycopg2
import pytest
from psycopg2 import sql

import dasktrain
from dasktrain.errors import DatabaseConnectionError

ROLE = "dt_locked"
PASSWORD = "right-horse-battery"


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    """(path, DSN) of a new embedded server, quiet, whose role ``dt_locked`` must give its password."""
    from pgserver._commands import pg_ctl

    from dasktrain.io._embedded import _servers, embedded_dsn, set_announce

    path = (tmp_path_factory.mktemp("own") / "pg").resolve()
    set_announce(False)
    try:
        dsn = embedded_dsn(path)
    finally:
        set_announce(True)
    server = _servers[path]
    hba = path / "pg_hba.conf"
    hba.write_text(f"local all {ROLE} scram-sha-256\nhost all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    with dasktrain.connect(dsn).cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(ROLE)), (PASSWORD,))
        cur.execute("SELECT pg_reload_conf()")
    yield path, dsn
    _servers.pop(path, None)
    pg_ctl(["-w", "stop", "-m", "immediate"], pgdata=server.pgdata, user=server.system_user)


def test_set_announce_silences_the_embedded_server_line(own_server, capsys):
    from dasktrain.io._embedded import _servers, embedded_dsn, set_announce

    path, _ = own_server
    assert capsys.readouterr().err == ""  # the fixture started it with set_announce(False)
    server = _servers.pop(path)  # as if this process had not used it yet
    try:
        set_announce(False)
        embedded_dsn(path)
        assert "embedded PostgreSQL server" not in capsys.readouterr().err
        _servers.pop(path)
        set_announce(True)
        embedded_dsn(path)
        assert f"using the embedded PostgreSQL server in {path}" in capsys.readouterr().err
    finally:
        set_announce(True)
        _servers[path] = server


def test_a_wrong_password_fails_at_once_without_showing_it(own_server, caplog):
    _, dsn = own_server
    right = psycopg2.extensions.make_dsn(dsn, user=ROLE, password=PASSWORD)
    assert dasktrain.connect(right).dialect.name == "postgresql"  # the role can log in: only the password is wrong
    wrong = psycopg2.extensions.make_dsn(dsn, user=ROLE, password="wrong-s3cret-horse")
    with caplog.at_level("WARNING", logger="dasktrain"), pytest.raises(DatabaseConnectionError) as info:
        dasktrain.connect(wrong)
    message = str(info.value)
    assert "retrying" not in caplog.text  # tried once
    assert f'password authentication failed for user "{ROLE}"' in message
    assert "wrong-s3cret-horse" not in message and "\n" not in message
