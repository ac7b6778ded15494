"""Transient database failures: recognising them, and retrying with bounded backoff.

A server restart, a failover or a terminated backend breaks the connection for a moment. Work
that can safely run again (a read, an idempotent segment write, a whole save transaction) is
retried a few times with growing pauses, each retry logged; when the failure persists the
user gets :class:`~dasktrain.errors.ConnectionLostError` naming what was being done, with the
database's own reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg2

from ..errors import ConnectionLostError, DatabaseConnectionError

T = TypeVar("T")
logger = logging.getLogger("dasktrain")

ATTEMPTS = 5
FIRST_DELAY = 0.25  # seconds; doubled after each failure: 0.25 + 0.5 + 1 + 2 = 3.75 s of waiting in all
MAX_DELAY = 4.0

_inside = threading.local()  # set while this thread runs retried work

# SQLSTATEs that mean "try again": connection exceptions (class 08), the server shutting down or
# starting (57P01-57P03), too many connections, and serialization failures or deadlocks.
_TRANSIENT_CODES = {"57P01", "57P02", "57P03", "53300", "40001", "40P01"}
# libpq reports a broken or refused connection without a SQLSTATE; these are its words for it.
_TRANSIENT_WORDS = (
    "server closed the connection",
    "connection already closed",
    "connection refused",
    "could not connect",
    "is the server running",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "terminating connection",
    "no connection to the server",
    "could not receive data",
    "could not send data",
    "ssl syscall error",
    "connection timed out",
    "server conn crashed",
    "sorry, too many clients already",
    "remaining connection slots are reserved",
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database failure that may succeed if the work is run again.

    >>> is_transient(psycopg2.OperationalError("server closed the connection unexpectedly"))
    True
    >>> is_transient(psycopg2.OperationalError('password authentication failed for user "ann"'))
    False
    """
    if isinstance(exc, ConnectionLostError):
        return True
    if isinstance(exc, DatabaseConnectionError):
        # open_connection judged the database's own words; the whole message would not do, as its
        # "Could not connect" would make a typo in the DSN look transient.
        transient = getattr(exc, "transient", None)
        return _transient_words(str(exc)) if transient is None else bool(transient)
    if not isinstance(exc, psycopg2.Error):
        return False
    code = getattr(exc, "pgcode", None)
    if code:
        return code.startswith("08") or code in _TRANSIENT_CODES
    return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError) and _transient_words(str(exc))


def _transient_words(message: str) -> bool:
    text = message.lower()
    return any(words in text for words in _TRANSIENT_WORDS)


def reason(exc: BaseException) -> str:
    """The first line of a database error, for messages.

    >>> reason(psycopg2.OperationalError("server closed the connection unexpectedly\\n\\tThis probably means"))
    'server closed the connection unexpectedly'
    """
    own = getattr(exc, "reason", None) if isinstance(exc, DatabaseConnectionError) else None
    if isinstance(own, str) and own:  # open_connection's error: the database's words, without our advice
        return own
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def retrying(what: str, work: Callable[[], T], *, attempts: int = ATTEMPTS, first_delay: float = FIRST_DELAY) -> T:
    """Run ``work()``; on a transient database failure run it again, up to ``attempts`` times in all.

    ``work`` must be safe to repeat: a read, or one transaction that either committed wholly or
    not at all. Each retry is logged on the ``dasktrain`` logger. Other errors pass through.
    Retried work that itself calls ``retrying`` (opening a connection, say) is retried only by the
    outermost call, so the bound on attempts and waiting holds.

    Raises
    ------
    ConnectionLostError
        When every attempt met a transient failure; the message says what was being done.

    Examples
    --------
    >>> retrying("reading the catalog", lambda: 42)
    42
    """
    if getattr(_inside, "active", False):
        return work()
    _inside.active = True
    try:
        return _retried(what, work, attempts, first_delay)
    finally:
        _inside.active = False


def _retried(what: str, work: Callable[[], T], attempts: int, first_delay: float) -> T:
    started = time.monotonic()
    delay, attempt = first_delay, 1
    while True:
        try:
            return work()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt >= attempts:
                elapsed = f"{attempts} tries in {time.monotonic() - started:.1f} s"
                if isinstance(exc, DatabaseConnectionError) and not isinstance(exc, ConnectionLostError):
                    raise DatabaseConnectionError(f"{exc} ({elapsed})") from None  # already says it all
                raise ConnectionLostError(
                    f"{what} failed: the database connection broke on all {elapsed} "
                    f"(last: {reason(exc)}). Check that the server is up and run again."
                ) from exc
            attempt += 1
            logger.warning(
                "%s: database connection failed (%s); retrying in %.2f s (attempt %d of %d)",
                what,
                reason(exc),
                delay,
                attempt,
                attempts,
            )
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
