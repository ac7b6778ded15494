"""Programs and functions that put raw data into tables spread over database segments.

Each program runs as ``python -m loaders.<name> --help``: ``idx`` (MNIST-format files,
Fashion-MNIST by default), ``cifar10``, ``images`` (a folder per class), ``digits``.

>>> import loaders
>>> loaders.write_arrays(None, "tiny", [[1, 2], [3, 4]], [0, 1])  # doctest: +SKIP
2
"""

from ._write import write_arrays
from .cifar10 import read_batch, read_split
from .digits import read_digits
from .idx import read_idx, read_images_and_labels
from .images import read_image_folder

__all__ = [
    "read_batch",
    "read_digits",
    "read_idx",
    "read_image_folder",
    "read_images_and_labels",
    "read_split",
    "write_arrays",
]
