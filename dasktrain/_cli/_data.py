"""``dasktrain segments``, ``load`` and ``demo``: look at a table's segments, load data, try it all."""

from __future__ import annotations

import argparse

from dasktrain._cli._base import command, gpus


def _segments_arguments(p):
    p.add_argument("table", help="table name, optionally schema-qualified")
    p.add_argument("-n", type=int, help="plain PostgreSQL tables: number of block ranges (default: CPUs)")
    p.add_argument("--exact", action="store_true", help="count each segment's rows (default: catalog estimates)")


@command(
    "segments",
    "list a table's segments (the units read and scored in parallel)",
    "dasktrain segments fashion_mnist_train",
    cluster=None,
)(_segments_arguments)
def _segments(args) -> int:
    from dasktrain import connect, segments

    db = connect(args.dsn)
    found = segments(db, args.table, args.n, exact=args.exact)  # before the header: an error prints nothing else
    print(f"{'segment':>7}  {'rows':>10}  {'host':<20}  relation")
    for seg in found:
        print(f"{seg.id:>7}  {seg.rows:>10}  {seg.host or '-':<20}  {seg.relation}")
    return 0


def _load_arguments(p):
    p.add_argument("loader", choices=["idx", "cifar10", "images", "digits"], help="which loader program")
    p.add_argument("loader_args", nargs=argparse.REMAINDER, help="its options (see python -m loaders.NAME --help)")


@command(
    "load",
    "load raw data into a table spread over segments (the loaders programs)",
    "dasktrain load idx --split test --table fashion_mnist_test",
    cluster=None,
)(_load_arguments)
def _load(args) -> int:
    import importlib

    module = importlib.import_module(f"loaders.{args.loader}")
    extra = ["--dsn", args.dsn] if args.dsn and "--dsn" not in args.loader_args else []
    extra += ["--quiet"] if args.quiet and "--quiet" not in args.loader_args else []
    return module.main([*args.loader_args, *extra])


def _demo_arguments(p):
    from dasktrain.strategies import STRATEGIES

    p.add_argument(
        "--strategy", default="slowmo", type=str.lower, choices=sorted(STRATEGIES), help="how replicas' models merge"
    )
    p.add_argument("--segments", type=int, default=4, help="segments to load the data into (default: 4)")
    p.add_argument("--iterations", type=int, default=3, help="training rounds (default: 3)")
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes (default: 2)")
    p.add_argument("--plot", default="dasktrain_demo.png", help="where to write the learning curve PNG")
    p.add_argument("--data-dir", help="folder of Fashion-MNIST IDX files (default: /usr/share/datasets/fashion-mnist)")


@command(
    "demo",
    "load Fashion-MNIST into segments, train a CNN on a local cluster, save it, score it",
    "dasktrain demo --strategy easgd --iterations 5",
    cluster="local",
)(_demo_arguments)
def _demo(args) -> int:
    from dasktrain._demo import demo

    demo(
        dsn=args.dsn,
        strategy=args.strategy,
        segments=args.segments,
        iterations=args.iterations,
        workers=args.workers,
        gpus=gpus(args.gpus) if args.gpus is not None else None,
        workers_per_gpu=args.workers_per_gpu or 1,
        dashboard_address=args.dashboard,
        plot=args.plot,
        data_dir=args.data_dir,
        progress=not args.quiet,
    )
    return 0
