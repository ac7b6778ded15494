"""Make a tiny folder of images, one sub-folder per class, to try ``python -m loaders.images`` on.

    python examples/make_image_folder.py tiny_images
    python -m loaders.images tiny_images --size 16x16 --table tiny_images --replace

Draws 8 PNG images of each of 3 classes (a square, a disc, a cross) with a little noise.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = {
    "square": lambda draw: draw.rectangle((8, 8, 24, 24), fill=255),
    "disc": lambda draw: draw.ellipse((8, 8, 24, 24), fill=255),
    "cross": lambda draw: (draw.line((6, 6, 26, 26), fill=255, width=4), draw.line((6, 26, 26, 6), fill=255, width=4)),
}


def make(folder: Path, per_class: int = 8, seed: int = 0) -> int:
    """Write ``per_class`` 32x32 PNGs per shape under ``folder/<shape>/``; return how many."""
    rng = np.random.default_rng(seed)
    for name, draw_shape in SHAPES.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            image = Image.new("L", (32, 32))
            draw_shape(ImageDraw.Draw(image))
            noisy = np.clip(np.asarray(image, dtype=np.int16) + rng.integers(-40, 40, (32, 32)), 0, 255)
            Image.fromarray(noisy.astype(np.uint8)).convert("RGB").save(folder / name / f"{name}_{k}.png")
    return per_class * len(SHAPES)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny_images")
    print(f"wrote {make(target)} images in {target}/ ({', '.join(SHAPES)})")
