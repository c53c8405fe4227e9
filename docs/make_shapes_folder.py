"""Write a small RGB image folder (class-per-folder, ``train/`` and ``val/``) for the docs' screenshots:

    .venv/bin/python docs/make_shapes_folder.py /tmp/shapes
    samplescope train --integration image-folder:/tmp/shapes --recipe fast --epochs 30 --out runs/shapes

Circles, squares and triangles of random colour, size and place on a noisy background of
another colour, 32x32 PNG; a few of each class are drawn small and faint, so the run has
errors worth looking at. Seeded: the same folder every time.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")
SIZE = 32


def shape(rng: np.random.Generator, kind: str) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(0, 120, 3))
    a = np.clip(np.asarray(background) + rng.normal(0, 18, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(a)
    draw = ImageDraw.Draw(image)
    faint = rng.random() < 0.08
    r = rng.uniform(3, 5) if faint else rng.uniform(6, 12)
    cx, cy = rng.uniform(r + 1, SIZE - r - 1, 2)
    colour = tuple(int(v) for v in (np.asarray(background) + 60 if faint else rng.integers(130, 256, 3)).clip(0, 255))
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return image


def main(root: Path, n_train: int = 300, n_val: int = 100) -> None:
    rng = np.random.default_rng(0)
    for subset, n in (("train", n_train), ("val", n_val)):
        for kind in CLASSES:
            folder = root / subset / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape(rng, kind).save(folder / f"{i:04d}.png")
    print(f"wrote {len(CLASSES) * (n_train + n_val)} images under {root}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
