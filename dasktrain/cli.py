"""The ``dasktrain`` command line: each subcommand is a thin layer over one API function.

Run ``dasktrain --help`` and ``dasktrain SUBCOMMAND --help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import DasktrainError

_COMMANDS: dict[str, tuple[str, Callable, Callable]] = {}


def command(name: str, help: str):
    """Register ``add_arguments(parser)`` and ``run(args) -> int`` as subcommand ``name``."""

    def register(add_arguments: Callable):
        def with_run(run: Callable):
            _COMMANDS[name] = (help, add_arguments, run)
            return run

        return with_run

    return register


def _segments_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", help="table name, optionally schema-qualified")
    p.add_argument("-n", type=int, help="plain PostgreSQL tables: number of block ranges (default: CPUs)")


@command("segments", "list a table's segments (the units read and trained in parallel)")(_segments_arguments)
def _segments(args: argparse.Namespace) -> int:
    from . import connect, segments

    db = connect(args.dsn)
    print(f"{'segment':>7}  {'rows':>10}  {'host':<20}  relation")
    for seg in segments(db, args.table, args.n):
        print(f"{seg.id:>7}  {seg.rows:>10}  {seg.host or '-':<20}  {seg.relation}")
    return 0


def _load_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("loader", choices=["idx", "cifar10", "images", "digits"], help="which loader program")
    p.add_argument("loader_args", nargs=argparse.REMAINDER, help="its options (see python -m loaders.NAME --help)")


@command("load", "load raw data into a table spread over segments (the loaders programs)")(_load_arguments)
def _load(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"loaders.{args.loader}")
    extra = ["--dsn", args.dsn] if args.dsn and "--dsn" not in args.loader_args else []
    return module.main([*args.loader_args, *extra])


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    from ._demo import STRATEGIES

    p.add_argument("--strategy", default="averaging", choices=sorted(STRATEGIES), help="how segments' models merge")
    p.add_argument("--segments", type=int, default=4, help="segments to load the data into (default: 4)")
    p.add_argument("--iterations", type=int, default=3, help="training rounds (default: 3)")
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes (default: 2)")
    p.add_argument("--plot", default="dasktrain_demo.png", help="where to write the learning curve PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@command("demo", "load Fashion-MNIST into segments, train a CNN on a local cluster, save it, score it")(_demo_arguments)
def _demo(args: argparse.Namespace) -> int:
    from ._demo import demo

    demo(
        dsn=args.dsn,
        strategy=args.strategy,
        segments=args.segments,
        iterations=args.iterations,
        workers=args.workers,
        plot=args.plot,
        progress=not args.quiet,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dasktrain",
        description="Train Keras models with Dask on data in Greenplum and PostgreSQL.",
        epilog="example:\n  dasktrain load digits --table digits && dasktrain segments digits",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", help="database (default: $DASKTRAIN_DSN, else the embedded server)")
    common.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dasktrain`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DasktrainError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"dasktrain {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
