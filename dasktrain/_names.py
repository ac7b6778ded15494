"""Table and column names: validation and composition with ``psycopg2.sql``.

Names are plain SQL identifiers, optionally schema-qualified (``"schema.table"``).
Like PostgreSQL does for unquoted names, they are folded to lower case.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from psycopg2 import sql

from .errors import InvalidNameError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
_MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1


def identifier(name: str, *, what: str = "column") -> str:
    """Return ``name`` folded to lower case, or raise if it is not a plain identifier.

    >>> identifier("Label")
    'label'
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidNameError(
            f"Invalid {what} name {name!r}: expected a plain SQL identifier (letters, digits and "
            f"underscores, not starting with a digit; no quotes, spaces or semicolons)."
        )
    if len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        raise InvalidNameError(f"Invalid {what} name {name!r}: longer than PostgreSQL's {_MAX_IDENTIFIER_BYTES} bytes.")
    return name.lower()


@dataclass(frozen=True)
class TableName:
    """A validated, optionally schema-qualified table name.

    >>> str(TableName.parse("public.Images"))
    'public.images'
    """

    schema: str | None
    name: str

    @classmethod
    def parse(cls, table: str | TableName) -> TableName:
        """Parse ``"table"`` or ``"schema.table"``; raise :class:`InvalidNameError` otherwise."""
        if isinstance(table, TableName):
            return table
        if not isinstance(table, str):
            raise InvalidNameError(f"Invalid table name {table!r}: expected a string such as 'images'.")
        parts = table.split(".")
        if len(parts) > 2:
            raise InvalidNameError(f"Invalid table name {table!r}: expected 'table' or 'schema.table'.")
        names = [identifier(part, what="table") for part in parts]
        return cls(None, names[0]) if len(names) == 1 else cls(names[0], names[1])

    @property
    def sql(self) -> sql.Identifier:
        """The name as a ``psycopg2.sql.Identifier``, schema-qualified when a schema was given."""
        if self.schema is None:
            return sql.Identifier(self.name)
        return sql.Identifier(self.schema, self.name)

    def sibling(self, suffix: str) -> TableName:
        """The table named ``<name><suffix>`` in the same schema (e.g. ``_summary``).

        When that would pass PostgreSQL's 63 bytes, the name is shortened and a hash of the whole
        name keeps it unique, so metadata tables of long names always fit (short names, and so
        every table written before this rule, keep ``<name><suffix>``).

        >>> TableName(None, "images").sibling("_summary").name
        'images_summary'
        >>> len(TableName(None, "t" * 60).sibling("_summary").name)
        63
        """
        full = self.name + suffix
        if len(full) > _MAX_IDENTIFIER_BYTES:
            digest = hashlib.sha256(self.name.encode()).hexdigest()[:8]
            full = f"{self.name[: _MAX_IDENTIFIER_BYTES - len(suffix) - 9]}_{digest}{suffix}"
        return TableName(self.schema, identifier(full, what="table"))

    def __str__(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"
