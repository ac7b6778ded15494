"""The embedded PostgreSQL server used when no DSN is given (the ``pgserver`` package).

pgserver stops the server when the last Python process using it exits normally. Two things
would leave it running for good, so we take care of them:

- SIGTERM (a ``kill``, a CI timeout, a container stop) ends a process without running its exit
  handlers: a process that started the server turns SIGTERM into a normal exit.
- A process killed with SIGKILL stays listed in pgserver's ``.handle_pids.json``, and the server
  then waits for it forever: dead processes are pruned from the list before each start.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

_servers: dict[Path, object] = {}
_lock = threading.Lock()
_announce = True  # the default of embedded_dsn(announce=None); see set_announce


def set_announce(on: bool) -> None:
    """Whether this process says on stderr which embedded server it uses (default True).

    A command-line ``--quiet`` turns it off for the whole process, so that every path that
    starts the server (``connect()``, ``fit(db=None)``, ...) keeps quiet.

    >>> set_announce(False)
    >>> set_announce(True)
    """
    global _announce
    _announce = bool(on)


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


def embedded_dsn(data_dir: str | os.PathLike | None = None, *, announce: bool | None = None) -> str:
    """Start (or reuse) the embedded PostgreSQL server in ``data_dir`` and return its DSN.

    The server is started on first use, keeps its data between runs, and stops when the last
    Python process that started it exits. Its location is printed on stderr once per process,
    unless ``announce`` is False (default None: as :func:`set_announce` says, True unless turned off).

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
                from pgserver.postgres_server import PostgresServer

                with PostgresServer._lock:  # the inter-process lock pgserver takes around its pid list
                    prune_dead_handles(path)
                server = pgserver.get_server(path, cleanup_mode="stop")
            _servers[path] = server
            _exit_on_sigterm()
            if _announce if announce is None else announce:
                print(f"dasktrain: using the embedded PostgreSQL server in {path}", file=sys.stderr)
    return server.get_uri()


def prune_dead_handles(data_dir: Path) -> list[int]:
    """Remove processes that no longer exist from pgserver's list of the server's users.

    Returns the pids removed. (pgserver 0.1.x keeps the list as a JSON array in
    ``<data_dir>/.handle_pids.json`` and stops the server only when it empties.)

    >>> prune_dead_handles(Path("/nonexistent"))
    []
    """
    import psutil

    handles = Path(data_dir) / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return []
    dead = [pid for pid in pids if not psutil.pid_exists(pid)]
    if dead:
        handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    return dead


def _exit_on_sigterm() -> None:
    """Make SIGTERM exit normally (so the server is stopped), unless the program handles it itself."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm)


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)
