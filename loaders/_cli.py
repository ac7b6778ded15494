"""What every loader program shares: common options, error handling, the final rows/s line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from dasktrain.errors import DasktrainError
from dasktrain.io._database import redact_text

from ._write import DEFAULT_SEGMENTS, write_arrays


def parser(prog: str, description: str, default_table: str, example: str) -> argparse.ArgumentParser:
    """An argument parser with the options every loader takes."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dsn", help="database to load into (default: $DASKTRAIN_DSN, else the embedded server)")
    p.add_argument("--table", default=default_table, help=f"table to create (default: {default_table})")
    p.add_argument(
        "--segments",
        type=int,
        default=DEFAULT_SEGMENTS,
        help=f"PostgreSQL hash partitions (default: {DEFAULT_SEGMENTS}; Greenplum uses its own segments)",
    )
    p.add_argument("--replace", action="store_true", help="drop and rewrite the table if it exists")
    p.add_argument(
        "--cascade", action="store_true", help="with --replace: also drop views that depend on the old table"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace, read: Callable[[], tuple], source: str) -> int:
    """Read the data with ``read() -> (x, y, class_values)``, load it, print rows/s; return an exit code."""
    try:
        x, y, class_values = read()
        start = time.perf_counter()
        rows = write_arrays(
            args.dsn,
            args.table,
            x,
            y,
            segments=args.segments,
            if_exists="replace" if args.replace else "fail",
            cascade=args.cascade,
            class_values=class_values,
            source=source,
            progress=not args.quiet,
        )
        seconds = time.perf_counter() - start
    except (DasktrainError, OSError, ValueError) as exc:
        print(f"error: {redact_text(str(exc), args.dsn)}", file=sys.stderr)
        return 2
    print(f"loaded {rows} rows into {args.table} in {seconds:.2f} s ({rows / max(seconds, 1e-9):,.0f} rows/s)")
    return 0
