"""``dasktrain fit`` and ``dasktrain fit-groups``: train a model, or one model per group, and save it."""

from __future__ import annotations

import sys

from dasktrain._cli._base import (
    add_architecture_flags,
    argument_error,
    client_for,
    command,
    merge_job,
    strategy_from,
)
from dasktrain.errors import DasktrainError

#: The parameters of EarlyStopping, as --early-stopping and a job's early_stopping take them.
EARLY_STOPPING_KEYS = {"patience", "min_delta", "monitor"}


def early_stopping(value):
    """--early-stopping or a job's ``early_stopping``: a patience, ``"patience=2, min_delta=0.001"``, or a mapping.

    >>> early_stopping("patience=2, min_delta=0.001")
    EarlyStopping(patience=2, min_delta=0.001, monitor=None)
    >>> early_stopping("3").patience
    3
    """
    from dasktrain._params import parse_params
    from dasktrain.train._early_stopping import EarlyStopping

    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.isdigit() else parse_params(text, what="early_stopping", allowed=EARLY_STOPPING_KEYS)
    return EarlyStopping.of(value)


def _replicas(text: str):
    from dasktrain.train._replicas import parse_replicas

    return parse_replicas(text)


def _fit_arguments(p):
    from dasktrain.strategies import STRATEGIES

    p.add_argument("--job", help="YAML file with the parameters of dasktrain.fit (flags override it)")
    p.add_argument("--data", help="training table")
    add_architecture_flags(p)
    p.add_argument("--x", help="feature column (default: x)")
    p.add_argument("--y", help="label column (default: y)")
    p.add_argument("--compile", help="Keras compile parameters, e.g. \"optimizer='adam', loss='mse'\"")
    p.add_argument("--fit", help='Keras fit parameters, e.g. "batch_size=128, epochs=1"')
    p.add_argument("--iterations", type=int, help="training rounds")
    p.add_argument("--strategy", type=str.lower, choices=sorted(STRATEGIES), help="how models merge")
    p.add_argument(
        "--strategy-params",
        help='the strategy\'s parameters, e.g. "momentum=0.8, lr_scaling=None" for slowmo (see its docs)',
    )
    p.add_argument("--alpha", type=float, help="EASGD alpha (default 0.01); only with --strategy easgd")
    p.add_argument("--beta", type=float, help="EASGD beta (default 0.9); only with --strategy easgd")
    p.add_argument("--validation", help="validation table")
    p.add_argument("--metrics-every", type=int, help="evaluate validation every k iterations (default 1)")
    p.add_argument("--sync-every", type=int, help="make a round k minibatches per replica")
    p.add_argument(
        "--replicas",
        type=argument_error(_replicas),
        help="models trained in parallel: a number, or 'segments' for one per segment (default: one per worker)",
    )
    p.add_argument("--normalizing-const", type=float, help="divide features by it (e.g. 255)")
    p.add_argument(
        "--early-stopping",
        help='stop when the loss stops improving: a patience, or "patience=2, min_delta=0.001" '
        "(monitor='training_loss' to follow the training loss although --validation is given)",
    )
    p.add_argument("--seed", type=int, help="seed each round's shuffle, so that a run (or a resumed run) replays it")
    p.add_argument("--cache", choices=["auto", "memory", "disk"], help="where workers keep the segments (default auto)")
    p.add_argument("--model-table", help="model table to save the result in (checked before training starts)")
    p.add_argument("--name", help="model name (default: model)")
    p.add_argument("--description", help="free text saved with the model")
    p.add_argument("--checkpoint-every", type=int, help="save a checkpoint version in --model-table every k iterations")
    p.add_argument("--checkpoint-keep", type=int, help="checkpoint versions to keep (default 2)")
    p.add_argument("--resume", action="store_true", help="continue from the latest version of --name (says which)")
    p.add_argument("--retries", type=int, help="times a round may be retried after losing workers (default 2)")


@command(
    "fit",
    "train a model on a table's segments and save it as a new version",
    "dasktrain fit --data digits --model-arch-table arch --model-id 1 --iterations 5 --model-table models "
    "--name digits_mlp --compile \"optimizer='adam', loss='sparse_categorical_crossentropy', "
    "metrics=['accuracy']\" --normalizing-const 16 --checkpoint-every 1",
)(_fit_arguments)
def _fit(args) -> int:
    from dasktrain import connect, fit, save_model
    from dasktrain._jobs import FIT_KEYS
    from dasktrain.models._model_store import check_model_table
    from dasktrain.train._replicas import parse_replicas

    params = merge_job(
        args, FIT_KEYS, "fit", ["data", "model_arch_table", "model_id", "compile", "iterations", "model_table"]
    )
    strategy = strategy_from(params)
    early = early_stopping(params.get("early_stopping"))
    db = connect(args.dsn)
    table, name = params["model_table"], params.get("name") or "model"
    check_model_table(db, table)  # before training, not after it
    every = params.get("checkpoint_every")
    checkpoint = (db, table, name) if every or params.get("resume") else None
    before = _versions(db, table, name)
    if params.get("resume") and before:  # with nothing saved, fit() itself warns that it trains from iteration 0
        print(f"dasktrain fit: {_resuming(before, table, params['iterations'])}", file=sys.stderr, flush=True)
    args.on_interrupt = lambda exc: _interrupted(exc, db, checkpoint, before, every, bool(params.get("resume")))
    with client_for(args) as client:
        result = fit(
            params["data"],
            (params["model_arch_table"], params["model_id"]),
            x=params.get("x", "x"),
            y=params.get("y", "y"),
            compile=params["compile"],
            fit=params.get("fit"),
            iterations=params["iterations"],
            strategy=strategy,
            validation=params.get("validation"),
            metrics_every=params.get("metrics_every", 1),
            sync_every=params.get("sync_every"),
            replicas=parse_replicas(params.get("replicas")),
            normalizing_const=params.get("normalizing_const", 1.0),
            early_stopping=early,
            checkpoint=checkpoint,
            checkpoint_every=every or 1,
            checkpoint_keep=params.get("checkpoint_keep", 2),
            resume=bool(params.get("resume")),
            retries=params.get("retries", 2),
            seed=params.get("seed"),
            cache=params.get("cache", "auto"),
            db=db,
            client=client,
            progress=not args.quiet,
        )
    # Saving is one transaction: an interrupted save leaves the table as it was, or the model saved whole.
    args.on_interrupt = lambda exc: f"interrupted while saving; 'dasktrain models list --model-table {table}' shows it"
    version = save_model(db, table, result, name=params.get("name"), description=params.get("description"))
    last = result.history[-1]
    if result.stopped_early:
        monitor = early.monitor or ("validation_loss" if params.get("validation") else "training_loss")
        print(f"stopped early at iteration {last['iteration']}: {early.reason(monitor)}")
    print(
        f"trained {len(result.history)} iterations: " + ", ".join(f"{k}={v:.4f}" for k, v in last["training"].items())
    )
    if last.get("validation"):
        print("validation: " + ", ".join(f"{k}={v:.4f}" for k, v in last["validation"].items()))
    print(f"saved {table}: name {name}, version {version}")
    return 0


def _versions(db, table: str, name: str) -> list[dict]:
    """The stored versions of ``name`` in ``table``, oldest first (none when the table does not exist yet)."""
    from dasktrain import list_models
    from dasktrain.errors import SchemaError

    try:
        return [m for m in list_models(db, table) if m["name"] == name]
    except SchemaError:
        return []


def _described(version: dict, table: str) -> str:
    """``version 3 of 'm' in 'models' (a checkpoint after iteration 2)``."""
    kind = "a checkpoint" if version["status"] == "checkpoint" else "the model"
    after = version["num_iterations"]
    return f"version {version['version']} of {version['name']!r} in {table!r} ({kind} after iteration {after})"


def _resuming(before: list[dict], table: str, iterations: int) -> str:
    """What --resume is about to do, in one line: which version and iteration it continues from."""
    return f"resuming from {_described(before[-1], table)}, up to iteration {iterations}"


def _interrupted(exc: BaseException, db, checkpoint, before: list[dict], every: int | None, resume: bool) -> str:
    """The one line Ctrl-C leaves: where the fit stopped, and what rerunning with --resume continues from."""
    from dasktrain.train._progress import INTERRUPTED

    where = next((n.removeprefix("fit: ") for n in getattr(exc, "__notes__", []) if n.startswith(INTERRUPTED)),
                 "interrupted before training started")  # fmt: skip
    if checkpoint is None:
        return f"{where}; no checkpoint was kept, so its training is lost (pass --checkpoint-every 1 to keep it)"
    _, table, name = checkpoint
    now = _versions(db, table, name)
    newest = now[-1] if now else None
    if newest is not None and (not before or newest["version"] > before[-1]["version"]):
        return f"{where}; the last checkpoint is {_described(newest, table)}: rerun with --resume to continue from it"
    if newest is not None and resume:
        return f"{where}; nothing was saved since {_described(newest, table)}: rerun with --resume to continue from it"
    first = every or 1
    return f"{where}; no checkpoint was saved yet (the first comes after iteration {first}), so its training is lost"


def _fit_groups_arguments(p):
    from dasktrain.strategies import STRATEGIES

    p.add_argument("--job", help="YAML file with the parameters of dasktrain.fit_groups (flags override it)")
    p.add_argument("--data", help="training table")
    p.add_argument("--by", help="grouping column: one model per value")
    add_architecture_flags(p)
    p.add_argument("--x", help="feature column (default: x)")
    p.add_argument("--y", help="label column (default: y)")
    p.add_argument("--compile", help="Keras compile parameters, e.g. \"optimizer='adam', loss='mse'\"")
    p.add_argument("--fit", help='Keras fit parameters, e.g. "batch_size=128, epochs=1"')
    p.add_argument("--iterations", type=int, help="passes over each group's rows")
    p.add_argument("--max-group-rows", type=int, help="a group with more rows trains across segments (with fit)")
    p.add_argument("--strategy", type=str.lower, choices=sorted(STRATEGIES), help="how a large group's models merge")
    p.add_argument("--strategy-params", help="the strategy's parameters (see 'dasktrain fit --help')")
    p.add_argument("--normalizing-const", type=float, help="divide features by it (e.g. 255)")
    p.add_argument("--seed", type=int, help="seed the shuffles")
    p.add_argument("--model-table", help="table to save the groups' models in (one version, a row per group)")
    p.add_argument("--name", help="name of the saved groups (default: groups)")
    p.add_argument("--description", help="free text saved with them")


@command(
    "fit-groups",
    "train one model per value of a column (per country, per device), in parallel, and save them",
    "dasktrain fit-groups --data sales --by country --model-arch-table arch --model-id 1 --iterations 5 "
    "--compile \"optimizer='adam', loss='sparse_categorical_crossentropy'\" --model-table group_models",
)(_fit_groups_arguments)
def _fit_groups(args) -> int:
    from dasktrain import connect, fit_groups, save_models
    from dasktrain._jobs import FIT_GROUPS_KEYS

    required = ["data", "by", "model_arch_table", "model_id", "compile", "iterations", "model_table"]
    params = merge_job(args, FIT_GROUPS_KEYS, "fit-groups", required)
    strategy = strategy_from(params) if params.get("strategy") or params.get("strategy_params") else None
    db = connect(args.dsn)
    check_search_table(db, params["model_table"])
    args.on_interrupt = lambda exc: "interrupted; the groups' models are saved when all have trained, so none were"
    with client_for(args) as client:
        result = fit_groups(
            params["data"],
            (params["model_arch_table"], params["model_id"]),
            by=params["by"],
            x=params.get("x", "x"),
            y=params.get("y", "y"),
            compile=params["compile"],
            fit=params.get("fit"),
            iterations=params["iterations"],
            max_group_rows=params.get("max_group_rows"),
            strategy=strategy,
            normalizing_const=params.get("normalizing_const", 1.0),
            seed=params.get("seed"),
            client=client,
            db=db,
            progress=not args.quiet,
        )
    name = params.get("name") or "groups"
    version = save_models(db, params["model_table"], result, name=name, description=params.get("description"))
    print(result.table())
    print(f"saved {params['model_table']}: name {name}, version {version}, {len(result.results)} groups")
    return 0


def check_search_table(db, table: str) -> None:
    """Refuse, before any training, a table that holds single models: searches and groups need their own."""
    from dasktrain._names import TableName
    from dasktrain.io._catalog import exists
    from dasktrain.models._selection_store import is_selection_table

    name = TableName.parse(table)
    with db.cursor() as cur:
        if exists(cur, name) and not is_selection_table(cur, name):
            raise DasktrainError(
                f"Table {table!r} holds single models ('dasktrain fit'): choose another --model-table for a search "
                f"or groups."
            )
