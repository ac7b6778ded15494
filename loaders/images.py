"""Load a folder of images, one sub-folder per class, into a table.

Run ``python -m loaders.images DIR --help``. Every PNG or JPEG file is converted to RGB (or
grayscale) and resized to one size, so the table holds arrays of one shape.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from . import _cli

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def parse_size(text: str) -> tuple[int, int]:
    """``"32"`` or ``"32x24"`` (width × height) -> ``(width, height)``.

    >>> parse_size("64x48")
    (64, 48)
    """
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise ValueError(f"Expected a size such as 32 or 64x48. Received: {text!r}")
    return (sizes[0], sizes[-1])


def read_image_folder(
    directory: str | os.PathLike, size: tuple[int, int] = (32, 32), grayscale: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images as ``uint8`` arrays (n, height, width, channels), labels, and the class names.

    Class ``i`` is the ``i``-th sub-folder in sorted order.

    >>> x, y, classes = read_image_folder("photos", size=(32, 32))  # doctest: +SKIP
    """
    from PIL import Image

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder.")
    classes = sorted(p.name for p in directory.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{directory} has no sub-folders: expected one sub-folder of images per class.")
    images, labels = [], []
    mode = "L" if grayscale else "RGB"
    for label, name in enumerate(classes):
        for path in sorted((directory / name).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(path) as image:
                images.append(np.asarray(image.convert(mode).resize(size)))
            labels.append(label)
    if not images:
        raise ValueError(f"No PNG or JPEG files in the class folders of {directory}.")
    x = np.stack(images)
    if grayscale:
        x = x[..., np.newaxis]
    return x, np.asarray(labels, dtype=np.int32), classes


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser(
        "python -m loaders.images",
        "Load a folder of images (one sub-folder per class) into a table spread over segments.",
        "images",
        "python -m loaders.images ~/photos --size 64x64 --table photos",
    )
    p.add_argument("directory", help="folder with one sub-folder of PNG/JPEG files per class")
    p.add_argument("--size", default="32x32", help="resize every image to WIDTHxHEIGHT (default: 32x32)")
    p.add_argument("--grayscale", action="store_true", help="one channel instead of RGB")
    args = p.parse_args(argv)
    return _cli.run(
        args,
        lambda: read_image_folder(args.directory, parse_size(args.size), args.grayscale),
        source=str(args.directory),
    )


if __name__ == "__main__":
    sys.exit(main())
