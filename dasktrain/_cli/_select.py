"""``dasktrain select``: a grid, random or Hyperband search over configurations, its table printed and saved."""

from __future__ import annotations

from collections.abc import Mapping

from dasktrain._cli._base import add_architecture_flags, client_for, command, merge_job, number
from dasktrain._cli._train import check_search_table
from dasktrain._params import bounded_repr
from dasktrain.errors import DasktrainError

SEARCHES = ("grid", "random", "hyperband")
#: A job file writes a distribution as a mapping of one of these names to its arguments.
DISTRIBUTIONS = ("uniform", "loguniform", "log_near_one", "choice")


def search_space(value, what: str) -> dict:
    """A job's ``compile`` or ``fit`` space: a mapping or a ``"name=value, ..."`` string; a list is a choice.

    In a mapping, ``{loguniform: [0.0001, 0.01]}`` (or ``uniform``, ``log_near_one``, ``choice``)
    is a distribution for a random search or Hyperband.

    >>> search_space({"learning_rate": {"loguniform": [0.001, 0.1]}, "loss": "mse"}, "compile")
    {'learning_rate': loguniform(low=0.001, high=0.1), 'loss': 'mse'}
    >>> search_space("batch_size=[32, 128]", "fit")
    {'batch_size': [32, 128]}
    """
    import dasktrain
    from dasktrain._params import parse_params

    space = parse_params(value, what=what, allowed=None)
    for key, entry in space.items():
        if isinstance(entry, Mapping) and len(entry) == 1 and next(iter(entry)) in DISTRIBUTIONS:
            kind, arguments = next(iter(entry.items()))
            if kind == "choice":
                space[key] = dasktrain.choice(arguments)
            elif isinstance(arguments, list) and len(arguments) == 2:
                space[key] = getattr(dasktrain, kind)(*arguments)
            else:
                raise DasktrainError(
                    f"{what} {bounded_repr(key)}: {kind} takes [low, high]. Received: {bounded_repr(arguments)}"
                )
    return space


def _select_arguments(p):
    p.add_argument("--job", help="YAML file with the search's parameters (flags override it; see docs/cli.md)")
    p.add_argument("--data", help="training table")
    p.add_argument("--validation", help="validation table (what configurations are ranked on)")
    add_architecture_flags(p, many=True)
    p.add_argument("--configs", help="a model selection table (dasktrain.save_model_selection) instead of a space")
    p.add_argument("--compile", help="compile space: \"optimizer='adam', learning_rate=[0.001, 0.01], loss='mse'\"")
    p.add_argument("--fit", help='fit space, e.g. "batch_size=[32, 128]"')
    p.add_argument("--search", choices=SEARCHES, help="every combination (default), n random ones, or Hyperband")
    p.add_argument("--n", type=int, help="random search: configurations to draw")
    p.add_argument("--iterations", type=int, help="grid and random search: passes of every model over the data")
    p.add_argument("--R", type=int, help="Hyperband: the most iterations a configuration gets")
    p.add_argument("--eta", type=int, help="Hyperband: each rung keeps 1/eta of the configurations (default 3)")
    p.add_argument("--schedule", choices=["madlib", "li"], help="Hyperband: MADlib's schedule (default) or Li et al.'s")
    p.add_argument("--folds", type=int, help="k-fold cross-validation instead of --validation (keeps no models)")
    p.add_argument("--rank-by", help="validation_loss (default with validation), training_loss, or a metric")
    p.add_argument("--seed", type=int, help="draws the same configurations and shuffles again")
    p.add_argument("--x", help="feature column (default: x)")
    p.add_argument("--y", help="label column (default: y)")
    p.add_argument("--normalizing-const", type=float, help="divide features by it (e.g. 255)")
    p.add_argument("--cache", choices=["auto", "memory", "disk"], help="where workers keep the segments (default auto)")
    p.add_argument("--model-table", help="table to save every configuration's model in (dasktrain.save_models)")
    p.add_argument("--name", help="name of the saved search (default: search)")
    p.add_argument("--description", help="free text saved with it")


@command(
    "select",
    "train many configurations at once (grid, random or Hyperband), print their table, save them",
    "dasktrain select --job search.yaml   (see docs/cli.md for the job file)",
)(_select_arguments)
def _select(args) -> int:
    import dasktrain
    from dasktrain import connect, save_models
    from dasktrain._jobs import SELECT_KEYS

    params = merge_job(args, SELECT_KEYS, "select", ["data"])
    search = params.get("search", "grid")
    if search not in SEARCHES:
        raise DasktrainError(f"search takes {', '.join(SEARCHES)}. Received: {bounded_repr(search)}")
    if params.get("folds") and params.get("model_table"):
        raise DasktrainError("a cross-validated search (--folds) keeps no models: leave out --model-table")
    db = connect(args.dsn)
    if params.get("model_table"):
        check_search_table(db, params["model_table"])
    args.on_interrupt = lambda exc: "interrupted; a search saves its models when it ends, so none were saved"
    common = {
        "x": params.get("x", "x"),
        "y": params.get("y", "y"),
        "validation": params.get("validation"),
        "folds": params.get("folds"),
        "rank_by": params.get("rank_by"),
        "seed": params.get("seed"),
        **{k: params[k] for k in ("id", "metrics_every", "normalizing_const", "retries", "cache") if k in params},
        "db": db,
        "progress": not args.quiet,
    }
    if search == "hyperband":
        _need(params, ["model_arch_table", "model_id", "compile", "R"], "--search hyperband")
        space = {"compile": search_space(params["compile"], "compile"), "fit": search_space(params.get("fit"), "fit")}
        extra = {k: params[k] for k in ("eta", "skip_last", "bracket", "schedule") if k in params}
        with client_for(args) as client:
            result = dasktrain.hyperband(params["data"], _architectures(params), R=params["R"], client=client,
                                         **space, **extra, **common)  # fmt: skip
    else:
        _need(params, ["iterations"], f"--search {search}")
        configs = params.get("configs") or _configs(params, search)
        with client_for(args) as client:
            result = dasktrain.fit_multiple(params["data"], configs, iterations=params["iterations"], client=client,
                                            **common)  # fmt: skip
    print(result.table())
    best = result.best_key
    ranked = "no configuration has a score"
    if best is not None:
        ranked = f"best: mst_key {best} ({result.rank_by}={number(result.score(best))})"
    if params.get("model_table"):
        name = params.get("name") or "search"
        version = save_models(db, params["model_table"], result, name=name, description=params.get("description"))
        print(f"saved {params['model_table']}: name {name}, version {version}; {ranked}")
    else:
        print(ranked)
    return 0


def _need(params: dict, keys: list[str], what: str) -> None:
    missing = [k for k in keys if params.get(k) is None]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise DasktrainError(f"{what} needs {flags} (or the same keys in --job)")


def _architectures(params: dict) -> list[tuple[str, int]]:
    ids = params["model_id"]
    return [(params["model_arch_table"], int(i)) for i in (ids if isinstance(ids, list) else [ids])]


def _configs(params: dict, search: str):
    from dasktrain import model_configs

    _need(params, ["model_arch_table", "model_id", "compile"], f"--search {search}")
    return model_configs(
        _architectures(params),
        compile=search_space(params["compile"], "compile"),
        fit=search_space(params.get("fit"), "fit"),
        search=search,
        n=params.get("n"),
        seed=params.get("seed"),
    )
