"""Programs and functions that put raw data into tables spread over database segments.

``write_arrays`` loads numpy arrays (one array column per row), ``write_frame`` a pandas
DataFrame (one plain column per column). Each program runs as ``python -m loaders.<name> --help``:
``idx`` (MNIST-format files, Fashion-MNIST by default), ``cifar10``, ``images`` (a folder per
class), ``digits``.

>>> import loaders
>>> loaders.write_arrays(None, "tiny", [[1, 2], [3, 4]], [0, 1])  # doctest: +SKIP
2
"""

import importlib

from ._frames import write_frame
from ._write import write_arrays

# The readers live in the modules that ``python -m loaders.<name>`` runs: importing those here
# would make runpy warn that the module was imported before it ran. They load on first use.
_READERS = {
    "read_batch": "cifar10",
    "read_split": "cifar10",
    "read_digits": "digits",
    "read_idx": "idx",
    "read_images_and_labels": "idx",
    "read_image_folder": "images",
}


def __getattr__(name: str):
    if name in _READERS:
        return getattr(importlib.import_module(f".{_READERS[name]}", __name__), name)
    raise AttributeError(f"module 'loaders' has no attribute {name!r}")


__all__ = [
    "read_batch",
    "read_digits",
    "read_idx",
    "read_image_folder",
    "read_images_and_labels",
    "read_split",
    "write_arrays",
    "write_frame",
]
