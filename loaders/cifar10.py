"""Load CIFAR-10 "python version" batch files into a table.

Run ``python -m loaders.cifar10 DIR --help``. The batches are pickles: they are read with an
unpickler that only rebuilds dicts, lists, strings, numbers and numpy arrays, so a tampered
file cannot run code.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np

from . import _cli

_SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
# The only globals a CIFAR-10 batch needs to be rebuilt (numpy moved _reconstruct in 2.0).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch file")
        return super().find_class(module, name)


def read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as ``uint8`` images (n, 32, 32, 3) (channels last, as Keras expects) and labels.

    >>> x, y = read_batch("cifar-10-batches-py/test_batch")  # doctest: +SKIP
    >>> x.shape  # doctest: +SKIP
    (10000, 32, 32, 3)
    """
    with open(path, "rb") as f:
        batch = _ArraysOnlyUnpickler(f, encoding="bytes").load()
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 batch (no b'data' and b'labels' entries).")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"{path}: expected data of shape (n, 3072) and n labels, got {data.shape} and {len(labels)}.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def read_split(directory: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray, list | None]:
    """All batches of ``split`` in ``directory``, concatenated, and the class names if present."""
    if split not in _SPLITS:
        raise ValueError(f"Expected split 'train' or 'test'. Received: split={split!r}")
    directory = Path(directory)
    paths = [directory / name for name in _SPLITS[split] if (directory / name).exists()]
    if not paths:
        raise FileNotFoundError(f"No CIFAR-10 {split} batches ({', '.join(_SPLITS[split])}) in {directory}.")
    parts = [read_batch(p) for p in paths]
    names = None
    meta = directory / "batches.meta"
    if meta.exists():
        with open(meta, "rb") as f:
            labels = _ArraysOnlyUnpickler(f, encoding="bytes").load().get(b"label_names")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in labels] if labels else None
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]), names


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser(
        "python -m loaders.cifar10",
        "Load CIFAR-10 'python version' batch files from a folder into a table spread over segments.",
        "cifar10_train",
        "python -m loaders.cifar10 ~/data/cifar-10-batches-py --split test --table cifar10_test",
    )
    p.add_argument("directory", help="folder holding data_batch_1..5, test_batch and batches.meta")
    p.add_argument("--split", default="train", choices=sorted(_SPLITS), help="which batches (default: train)")
    args = p.parse_args(argv)
    return _cli.run(args, lambda: read_split(args.directory, args.split), source=str(args.directory))


if __name__ == "__main__":
    sys.exit(main())
