"""Which kind of server we talk to, detected once per connection handle.

Code elsewhere asks the :class:`Dialect` (``dialect.distributed``); it never looks at
version strings itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

POSTGRESQL = "postgresql"
GREENPLUM = "greenplum"
CLOUDBERRY = "cloudberry"


@dataclass(frozen=True)
class Dialect:
    """The server's kind and version.

    Examples
    --------
    >>> Dialect(GREENPLUM, 120012).distributed
    True
    """

    name: str
    server_version_num: int

    @property
    def distributed(self) -> bool:
        """True for massively parallel servers (Greenplum, Cloudberry) with ``gp_segment_id``."""
        return self.name in (GREENPLUM, CLOUDBERRY)

    def distribution(self, *key: str) -> sql.Composable:
        """The distribution clause of a table dasktrain creates: none on PostgreSQL.

        On Greenplum and Cloudberry a table is spread by ``key`` (its rows, and the joins on that
        key, stay on one segment), or with no key copied to every segment (``DISTRIBUTED
        REPLICATED``: small metadata tables that every segment reads whole).

        >>> Dialect(POSTGRESQL, 160000).distribution("id")
        SQL('')
        >>> Dialect(GREENPLUM, 120012).distribution()
        SQL(' DISTRIBUTED REPLICATED')
        """
        if not self.distributed:
            return sql.SQL("")
        if not key:
            return sql.SQL(" DISTRIBUTED REPLICATED")
        return sql.SQL(" DISTRIBUTED BY ({})").format(sql.SQL(", ").join(map(sql.Identifier, key)))

    @property
    def supports_tid_range_scan(self) -> bool:
        """TID range scans (``ctid >= '(a,0)'``) read only the blocks asked for from PostgreSQL 14 on."""
        return self.server_version_num >= 140000


DETECT_QUERY = (
    "SELECT current_setting('server_version_num')::int, version(), "
    "to_regclass('pg_catalog.gp_segment_configuration') IS NOT NULL"
)


def detect(cursor) -> Dialect:
    """Ask the server what it is, with one query on an open ``cursor``."""
    cursor.execute(DETECT_QUERY)
    version_num, version, has_segments = cursor.fetchone()
    return dialect_from(version_num, version, has_segments)


def dialect_from(version_num: int, version: str, has_segment_catalog: bool) -> Dialect:
    """Build the dialect from what :data:`DETECT_QUERY` returns.

    >>> dialect_from(120012, "PostgreSQL 12.12 (Greenplum Database 7.1.0 build)", True).name
    'greenplum'
    """
    if not has_segment_catalog:
        return Dialect(POSTGRESQL, version_num)
    if "cloudberry" in version.lower():
        return Dialect(CLOUDBERRY, version_num)
    return Dialect(GREENPLUM, version_num)
