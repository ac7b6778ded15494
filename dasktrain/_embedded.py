"""The embedded PostgreSQL server used when no DSN is given (the ``pgserver`` package)."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

_servers: dict[Path, object] = {}
_lock = threading.Lock()


def default_data_dir() -> Path:
    """Where the embedded server keeps its data: ``$DASKTRAIN_DATA_DIR`` or a per-user folder.

    >>> default_data_dir().name
    'pgdata'
    """
    base = os.environ.get("DASKTRAIN_DATA_DIR")
    if base:
        return Path(base).expanduser() / "pgdata"
    import platformdirs

    return Path(platformdirs.user_data_dir("dasktrain")) / "pgdata"


def embedded_dsn(data_dir: str | os.PathLike | None = None, *, announce: bool = True) -> str:
    """Start (or reuse) the embedded PostgreSQL server in ``data_dir`` and return its DSN.

    The server is started on first use, keeps its data between runs, and stops when the last
    Python process that started it exits. Its location is printed once per process.

    Examples
    --------
    >>> import psycopg2
    >>> psycopg2.connect(embedded_dsn()).close()  # doctest: +SKIP
    """
    path = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
    with _lock:
        server = _servers.get(path)
        if server is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
                warnings.simplefilter("ignore")
                import pgserver

                server = pgserver.get_server(path, cleanup_mode="stop")
            _servers[path] = server
            if announce:
                print(f"dasktrain: using the embedded PostgreSQL server in {path}", file=sys.stderr)
    return server.get_uri()
