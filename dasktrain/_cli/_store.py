"""``dasktrain models`` and ``dasktrain architectures``: what is stored in the database (no cluster)."""

from __future__ import annotations

import argparse

from dasktrain._cli._base import check_names, command, number
from dasktrain.errors import DasktrainError


def _models_arguments(p):
    p.add_argument("action", choices=["list", "show", "delete"])
    p.add_argument("--model-table", required=True, help="model table")
    p.add_argument("--name", help="model name (show, delete)")
    p.add_argument("--version", type=int, help="version (show: default latest; delete: default all versions)")


@command(
    "models",
    "list, show or delete stored models",
    "dasktrain models show --model-table models --name fashion_cnn",
    cluster=None,
)(_models_arguments)
def _models(args) -> int:
    from dasktrain import connect, delete_model, list_models, model_summary
    from dasktrain.models._model_store import load_members

    db = connect(args.dsn)
    if args.action == "list":
        _print_models(list_models(db, args.model_table))
    elif args.action == "show":
        summary = model_summary(db, args.model_table, args.name, args.version)
        _print_summary(summary)
        _print_layers(load_members(db, args.model_table, summary["name"], summary["version"])[0])
    else:
        if not args.name:
            raise DasktrainError("models delete needs --name")
        print(f"deleted {delete_model(db, args.model_table, args.name, args.version)} version(s)")
    return 0


def _print_models(models: list[dict]) -> None:
    metric = next((m["metrics_type"][0] for m in models if m["metrics_type"]), "metric")[:10]
    print(f"{'name':<24} {'version':>7} {'status':<10} {'strategy':<9} {'iters':>5} {'train loss':>10} "
          f"{'train ' + metric:>16} {'val loss':>9} {'val ' + metric:>14}  created")  # fmt: skip
    for m in models:
        print(
            f"{m['name']:<24} {m['version']:>7} {m['status']:<10} {m['strategy'] or '-':<9} {m['num_iterations']:>5} "
            f"{number(m['training_loss_final']):>10} {number(m['training_metrics_final']):>16} "
            f"{number(m['validation_loss_final']):>9} {number(m['validation_metrics_final']):>14}  "
            f"{m['created_at']:%Y-%m-%d %H:%M}"
        )


def _print_summary(summary: dict) -> None:
    """One line per field, floats rounded; the per-iteration lists are shortened to their ends."""
    for key, value in summary.items():
        if key in ("history",):
            continue
        if isinstance(value, float):
            value = number(value)
        elif isinstance(value, list) and value and all(isinstance(v, float) for v in value):
            shown = [number(v) for v in value]
            value = "[" + ", ".join(shown if len(shown) <= 6 else [*shown[:3], "...", *shown[-2:]]) + "]"
        print(f"{key}: {value}")


def _print_layers(architecture: str) -> None:
    """The layers as Keras's summary lists them: name (type), output shape, parameters."""
    from dasktrain._model_spec import build_model

    model = build_model(architecture)
    print(f"\n{'layer (type)':<36} {'output shape':<22} {'params':>10}")
    for layer in model.layers:
        shape = str(tuple(getattr(layer, "output", None).shape)) if hasattr(layer, "output") else "?"
        print(f"{layer.name + ' (' + type(layer).__name__ + ')':<36} {shape:<22} {layer.count_params():>10,}")
    print(f"{'total':<36} {'':<22} {model.count_params():>10,}")


def _architectures_arguments(p):
    p.add_argument("action", choices=["load", "list", "delete"])
    p.add_argument("--model-arch-table", help="architecture table (the same flag as in 'dasktrain fit')")
    p.add_argument("--table", dest="old_table", help=argparse.SUPPRESS)  # its name before --model-arch-table
    p.add_argument("--json", help="load: file with the Keras model JSON (model.to_json()) or a .keras file")
    p.add_argument("--name", help="load: a name for it")
    p.add_argument("--description", help="load: free text")
    p.add_argument("--model-id", type=int, help="delete: which architecture")


@command(
    "architectures",
    "load, list or delete model architectures (MADlib's model_arch tables)",
    "dasktrain architectures load --model-arch-table model_arch --json cnn.json --name cnn",
    cluster=None,
)(_architectures_arguments)
def _architectures(args) -> int:
    from pathlib import Path

    from dasktrain import connect, delete_architecture, list_architectures, load_architecture
    from dasktrain._model_spec import model_json

    table = args.model_arch_table or args.old_table
    if not table:
        raise DasktrainError(f"architectures {args.action} needs --model-arch-table")
    check_names({"model_arch_table": table})
    if args.action == "load":  # the file is read and checked before the database is connected to
        if not args.json:
            raise DasktrainError("architectures load needs --json FILE")
        weights = None
        if args.json.endswith(".keras"):
            from dasktrain.score._scoring import load_keras_file

            model = load_keras_file(args.json)
            architecture, weights = model.to_json(), model.get_weights()
        else:
            architecture = model_json(Path(args.json).read_text())
        db = connect(args.dsn)
        model_id = load_architecture(
            db, table, architecture, name=args.name, description=args.description, weights=weights
        )
        print(f"model_id {model_id}")
        return 0
    db = connect(args.dsn)
    if args.action == "list":
        print(f"{'model_id':>8}  {'weights':<7}  {'name':<20}  description")
        for a in list_architectures(db, table):
            print(
                f"{a['model_id']:>8}  {'yes' if a['has_weights'] else 'no':<7}  {a['name'] or '-':<20}  "
                f"{a['description'] or ''}"
            )
    else:
        if args.model_id is None:
            raise DasktrainError("architectures delete needs --model-id")
        delete_architecture(db, table, args.model_id)
        print(f"deleted model_id {args.model_id}")
    return 0
