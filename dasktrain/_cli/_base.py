"""What every subcommand shares: the registry, the cluster a command runs on, job files, messages.

The command line is a client of the library, as a user's program is: its modules import ``dasktrain``
absolutely, never the other way round.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dasktrain._params import bounded_repr
from dasktrain.errors import DasktrainError

#: Which cluster flags a command takes: all of them, those shaping a local cluster, or none.
CLUSTER_FLAGS = ("all", "local", None)


@dataclass(frozen=True)
class Command:
    help: str
    example: str
    add_arguments: Callable
    run: Callable
    cluster: str | None


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, example: str, *, cluster: str | None = "all"):
    """Register ``add_arguments(parser)`` and then ``run(args) -> int`` as subcommand ``name``.

    ``cluster`` says which cluster flags the command lists: ``"all"`` (--scheduler and the local
    cluster's shape), ``"local"`` (only the shape of the local cluster it starts) or None (it
    starts no cluster).
    """
    if cluster not in CLUSTER_FLAGS:
        raise ValueError(f"cluster must be one of {CLUSTER_FLAGS}. Received: {cluster!r}")

    def register(add_arguments: Callable):
        def with_run(run: Callable):
            COMMANDS[name] = Command(help, example, add_arguments, run, cluster)
            return run

        return with_run

    return register


class Interrupted(Exception):
    """Ctrl-C, with the one line a command has to say about it (where it stopped, what to do next)."""


@contextlib.contextmanager
def client_for(args):
    """A client on --scheduler; on a local cluster shaped by --gpus; else None (the API starts one when needed)."""
    from distributed import Client

    shaped = args.gpus is not None or args.workers_per_gpu is not None
    # Dask's own variable: the Kubernetes operator sets it in a DaskJob's runner, `dask worker` reads it too.
    scheduler = getattr(args, "scheduler", None) or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if scheduler:
        if shaped:
            raise DasktrainError(
                "--gpus and --workers-per-gpu shape a local cluster, not --scheduler's: start the GPU workers of "
                "that cluster with 'dask cuda worker SCHEDULER --resources GPU=1 --preload dasktrain.gpu_worker'"
            )
        from dask import config

        if not args.quiet:
            wait = config.get("distributed.comm.timeouts.connect")
            print(f"connecting to the Dask scheduler at {scheduler} (waiting up to {wait})...", file=sys.stderr)
        with Client(scheduler) as client:
            yield client
    elif shaped or args.dashboard is not None:
        from dasktrain.runtime._cluster import client_or_local

        shape = {"gpus": gpus(args.gpus), "workers_per_gpu": args.workers_per_gpu or 1} if shaped else {}
        if args.dashboard is not None:
            shape["dashboard_address"] = args.dashboard
        with client_or_local(None, quiet=args.quiet, current=False, **shape) as client:
            yield client
    else:
        yield None


def gpus(text: str | None):
    """--gpus: "auto", or a count."""
    if text is None or text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise DasktrainError(f"--gpus takes 'auto' or a number of GPUs, not {bounded_repr(text)}") from None


def merge_job(args, keys: set[str], command_name: str, required: Sequence[str]) -> dict:
    """Parameters from --job, overridden by any flag given; each checked for its type, the required ones there."""
    from dasktrain._jobs import check_value, read_job

    params = read_job(args.job, keys, command_name) if args.job else {}
    for key in keys:
        value = getattr(args, key, None)
        if value is not None and value is not False:
            if key != "version":  # --version is text: a number or 'latest', read below
                check_value(key, value)
            params[key] = value
    if "version" in params:  # a number, or "latest" (= None) from a flag or a job file
        params["version"] = version(params["version"])
    missing = [k for k in required if params.get(k) is None]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise DasktrainError(f"missing {flags} (or the same keys in --job)")
    check_names(params)
    return params


#: Job keys that name a table, a column (or several, joined by commas) and a stored model.
TABLE_KEYS = (
    "data", "validation", "model_arch_table", "model_table", "configs", "source_table", "output_table", "table"
)  # fmt: skip
COLUMN_KEYS = ("x", "y", "by", "id")
#: Longer than any name PostgreSQL takes (63 bytes): refused without repeating it.
_LONGEST_NAME = 200


def check_names(params: dict) -> None:
    """Refuse, before any cluster starts or any training, a table, column or model name that cannot work.

    A model name such as ``my-model`` was refused only when the trained model was saved, after
    all its iterations (issue 22); every name a command will use is checked here first.

    >>> check_names({"model_table": "models", "name": "my-model"})
    Traceback (most recent call last):
    ...
    dasktrain.errors.InvalidNameError: Invalid model name 'my-model': expected a plain SQL identifier (letters, \
digits and underscores, not starting with a digit; no quotes, spaces or semicolons).
    """
    from dasktrain._names import TableName, identifier
    from dasktrain.errors import InvalidNameError

    def named(key: str, value, check) -> None:
        if isinstance(value, str) and len(value) > _LONGEST_NAME:
            raise InvalidNameError(
                f"--{key.replace('_', '-')} is {len(value)} characters long: a name has at most 63 bytes."
            )
        check(value)

    for key in TABLE_KEYS:
        if params.get(key) is not None:
            named(key, params[key], TableName.parse)
    for key in COLUMN_KEYS:
        value = params.get(key)
        columns = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
        for column in columns:
            named(key, column, lambda c: identifier(c.strip() if isinstance(c, str) else c))
    if params.get("name") is not None:
        named("name", params["name"], lambda n: identifier(n, what="model"))


def version(value) -> int | None:
    """--version or a job's ``version``: a whole number >= 1, or "latest" (None).

    >>> version("3"), version("latest"), version(2)
    (3, None, 2)
    """
    if value is None or value == "latest":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise DasktrainError(f"--version takes a number (1, 2, ...) or 'latest'. Received: {bounded_repr(value)}")
    return value


def number(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def strategy_from(params: dict):
    """The strategy of a fit job: its name, ``strategy_params``, and EASGD's ``alpha`` and ``beta``."""
    from dasktrain._params import parse_params
    from dasktrain.strategies import strategy_named

    # Any name parses here; strategy_named refuses (naming it) what the chosen strategy does not take.
    strategy_params = parse_params(params.get("strategy_params"), what="strategy", allowed=None)
    strategy_params.update({k: params[k] for k in ("alpha", "beta") if params.get(k) is not None})
    return strategy_named(params.get("strategy", "slowmo"), **strategy_params)


def add_architecture_flags(p, *, many: bool = False) -> None:
    """--model-arch-table and --model-id, as fit, fit-groups and select name an architecture."""
    p.add_argument("--model-arch-table", help="architecture table (see 'dasktrain architectures')")
    if many:
        p.add_argument("--model-id", type=int, nargs="+", help="architecture id(s) in --model-arch-table")
    else:
        p.add_argument("--model-id", type=int, help="architecture id in --model-arch-table")


#: How the library's messages name Python calls, and what a command-line user types instead.
COMMAND_WORDS = [
    ("Pass replace=True (--replace) to replace it", "Pass --replace to replace it"),
    ("Pass replace=True to replace it", "Pass --replace to replace it"),
    ("create it with load_architecture()", "create it with 'dasktrain architectures load'"),
    ("see list_models()", "see 'dasktrain models list'"),
    ("pass name= to choose one", "pass --name to choose one"),
    ("or pass dsn=None to use the embedded server", "or leave out --dsn and DASKTRAIN_DSN to use the embedded server"),
    ("pass checkpoint=(db, table, name) to keep progress", "pass --checkpoint-every to keep progress"),
    ("continue with resume=True", "rerun with --resume"),
    ("or pass use_gpus=False", "or start a cluster without GPU workers"),
]


def in_command_words(message: str) -> str:
    """``message`` with Python calls replaced by the commands and flags that do the same.

    >>> in_command_words("Output table 'x' already exists. Pass replace=True to replace it.")
    "Output table 'x' already exists. Pass --replace to replace it."
    """
    for python, flag in COMMAND_WORDS:
        message = message.replace(python, flag)
    return message


def one_line(exc: BaseException, args) -> str:
    """An error as one line in command words, with any DSN's password removed."""
    from dasktrain.io._database import DSN_ENV, redact_text

    message = " ".join(str(exc).split()) or type(exc).__name__
    return redact_text(in_command_words(message), getattr(args, "dsn", None), os.environ.get(DSN_ENV))


def argument_error(function: Callable):
    """An argparse ``type=`` from a parser that raises :class:`DasktrainError` (the message kept)."""

    def parse(text: str):
        try:
            return function(text)
        except DasktrainError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse
