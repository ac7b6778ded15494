"""The ``dasktrain`` command line (``dasktrain.cli`` is its entry point): one module per group of subcommands.

Each subcommand is a thin layer over one API function. Errors print one line on stderr and exit
with status 2 (``--debug`` shows the traceback); Ctrl-C prints one line saying where the command
stopped and exits with status 130, the shell's status for SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from dasktrain._cli import _data, _score, _select, _store, _train  # noqa: F401  (they register the commands)
from dasktrain._cli._base import COMMANDS, Interrupted, in_command_words, one_line
from dasktrain._version import __version__
from dasktrain.errors import DasktrainError

__all__ = ["build_parser", "in_command_words", "main"]

#: The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED_STATUS = 130
#: The order --help lists the commands in: a job's steps.
ORDER = ["segments", "load", "demo", "fit", "fit-groups", "select", "predict", "evaluate", "models", "architectures"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dasktrain",
        description="Train Keras models with Dask on data in Greenplum and PostgreSQL.",
        epilog="example:\n  dasktrain demo\n  dasktrain predict --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dasktrain {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", help="database (default: $DASKTRAIN_DSN, else the embedded server)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--scheduler", help="Dask scheduler ADDRESS (default: $DASK_SCHEDULER_ADDRESS, else a local cluster)"
    )
    local = argparse.ArgumentParser(add_help=False)
    local.add_argument(
        "--gpus", metavar="N|auto", help="local cluster: GPU workers on N GPUs, or on all (default: all, if any)"
    )
    local.add_argument("--workers-per-gpu", type=int, metavar="K", help="local cluster: K workers share each GPU")
    local.add_argument(
        "--dashboard", metavar="[HOST]:PORT", help="local cluster: where its Dask dashboard listens (default :8787, "
        "or a free port when 8787 is taken)"
    )  # fmt: skip
    parents = {"all": [common, remote, local], "local": [common, local], None: [common]}
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in sorted(COMMANDS, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        spec = COMMANDS[name]
        p = sub.add_parser(
            name,
            help=spec.help,
            description=spec.help,
            parents=parents[spec.cluster],
            epilog=f"example:\n  {spec.example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        spec.add_arguments(p)
        p.set_defaults(run=spec.run, on_interrupt=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dasktrain`` console script; returns the exit status."""
    import psycopg2

    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        from dasktrain.io._embedded import set_announce

        set_announce(False)  # --quiet silences the embedded server's "using ..." line too
    try:
        return args.run(args)
    except (KeyboardInterrupt, Interrupted) as exc:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the one line short
        if args.debug:
            import traceback

            traceback.print_exc()
        message = args.on_interrupt(exc) if args.on_interrupt is not None else "interrupted"
        print(f"dasktrain {args.command}: {one_line(message, args)}", file=sys.stderr, flush=True)
        return INTERRUPTED_STATUS
    except (DasktrainError, OSError, ValueError, TypeError, psycopg2.Error) as exc:
        if args.debug:  # the traceback too, and still the status of a user error
            import traceback

            traceback.print_exc()
        print(f"dasktrain {args.command}: error: {one_line(exc, args)}", file=sys.stderr)
        return 2
