"""An integration without code over a folder of images, one folder per class.

    root/
      train/<class>/*.png|*.jpg|*.jpeg
      val/<class>/...          (or validation/)
      test/<class>/...         (optional)

    from samplescope.integrations import from_image_folder
    integ = from_image_folder("pets")            # CLI: --integration image-folder:pets

Classes are the train folder's sub-folder names, sorted. Files are read lazily
with Pillow, only when a sample is encoded or shown, as RGB, resized to one size
(``size=(H, W)``; default the first training image's, scaled down so its longer side
is at most :data:`MAX_SIDE`): every input is ``(3, H, W)`` floats in [0, 1]. Metadata:
each file's original width and height and its class folder. Sample ids are the
paths relative to ``root``.

A run made from it records the folder's path and the size in ``run.json``
(``integration.rebuild``) and reopens from the images themselves; if the folder
moved, pass it again: ``open_run(path, integration=from_image_folder(new_root))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from samplescope.errors import IntegrationError

MODULE = __name__
EXTENSIONS = (".png", ".jpg", ".jpeg")
MAX_SIDE = 128
_FOLDERS = {"train": ("train",), "validation": ("val", "validation"), "test": ("test",)}


def from_image_folder(root: str | Path, *, size: tuple[int, int] | None = None, name: str | None = None) -> Any:
    """An integration over ``root/train/<class>/`` and ``root/val/<class>/`` image files (see the module)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise IntegrationError(f"from_image_folder(): {root} is not a folder; pass the folder holding train/ and val/.")
    found: dict[str, Path] = {}
    for subset, names in _FOLDERS.items():
        for n in names:
            if (root / n).is_dir():
                found[subset] = root / n
                break
    for subset in ("train", "validation"):
        if subset not in found:
            raise IntegrationError(
                f"from_image_folder(): {root} has no {'/ or '.join(_FOLDERS[subset])}/ folder; lay it out as "
                "train/<class>/*.png and val/<class>/*.png."
            )
    classes = sorted(p.name for p in found["train"].iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise IntegrationError(f"from_image_folder(): {found['train']} has no class folders; put each class's images in train/<class>/.")
    files: dict[str, list[tuple[str, int]]] = {}
    for subset, folder in found.items():
        rows: list[tuple[str, int]] = []
        for cls_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if cls_dir.name not in classes:
                raise IntegrationError(
                    f"from_image_folder(): class folder {cls_dir} has no counterpart in {found['train']}; every "
                    f"class needs training images (the classes are {classes})."
                )
            label = classes.index(cls_dir.name)
            rows += [(str(f.relative_to(root)), label) for f in sorted(cls_dir.iterdir())
                     if f.is_file() and f.suffix.lower() in EXTENSIONS]  # fmt: skip
        if not rows and subset != "test":
            raise IntegrationError(f"from_image_folder(): no .png/.jpg/.jpeg files under {folder}.")
        if rows:
            files[subset] = rows
    if size is None:
        size = _default_size(root / files["train"][0][0])
    recipe = {"kind": "image_folder", "root": str(root), "size": [int(size[0]), int(size[1])],
              "name": name or root.name, "classes": classes}  # fmt: skip
    return _build(recipe, files)


def rebuild(recipe: dict[str, Any]) -> Any:
    """The integration a run recorded, from its image folder (no code from the run)."""
    from samplescope.errors import RunError

    root = Path(recipe["root"])
    if not root.is_dir():
        raise RunError(
            f"The run's images were in {root}, which is not there now; pass the folder: "
            "open_run(path, integration=from_image_folder(NEW_ROOT)) or --integration image-folder:NEW_ROOT."
        )
    return from_image_folder(root, size=tuple(recipe["size"]), name=recipe.get("name"))


def _build(recipe: dict[str, Any], files: dict[str, list[tuple[str, int]]]) -> Any:
    from samplescope import Batch, Integration, Sample, Subset

    root, (h, w) = Path(recipe["root"]), recipe["size"]
    integ = Integration(recipe["name"], classes=recipe["classes"])
    integ.source, integ.module = None, MODULE
    integ.rebuild = recipe

    def make(subset: str) -> None:
        @integ.subset(subset)
        def _subset(state: Any) -> Any:
            return Subset(ids=[f for f, _ in files[subset]], data=files[subset])

    for s in files:
        make(s)

    def picture(rel: str) -> tuple[np.ndarray, tuple[int, int]]:
        """(H, W, 3) uint8 at the integration's size, and the file's own (width, height)."""
        from PIL import Image, UnidentifiedImageError

        path = root / rel
        try:
            with Image.open(path) as img:
                original = img.size
                rgb = img.convert("RGB").resize((w, h), Image.Resampling.BILINEAR)
                return np.asarray(rgb, dtype=np.uint8), original
        except (OSError, UnidentifiedImageError) as exc:
            raise IntegrationError(
                f"from_image_folder(): {path} cannot be read as an image ({exc}); delete or replace the file."
            ) from exc

    @integ.input("image", batched=True, kind="image")
    def image(batch: Batch) -> np.ndarray:
        pics = [picture(rel)[0] for rel in batch.ids]  # (B, H, W, 3) uint8
        return np.stack(pics).transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # (B, 3, H, W)

    @integ.ground_truth_batched
    def label(batch: Batch) -> np.ndarray:
        return np.array([batch.data[i][1] for i in batch.indices], dtype=np.int64)

    @integ.metadata("file", batched=True)
    def file_info(batch: Batch) -> dict[str, np.ndarray]:
        sizes = []
        for rel in batch.ids:
            from PIL import Image

            with Image.open(root / rel) as img:  # reads the header only
                sizes.append(img.size)
        return {
            "width": np.array([s[0] for s in sizes], dtype=np.int64),
            "height": np.array([s[1] for s in sizes], dtype=np.int64),
            "folder": np.array([Path(rel).parent.name for rel in batch.ids], dtype=str),
        }

    @integ.visualizer("image")
    def show(sample: Sample) -> np.ndarray:
        return picture(sample.id)[0]

    return integ


def _default_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
    except OSError as exc:
        raise IntegrationError(f"from_image_folder(): {path} cannot be read as an image ({exc}).") from exc
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))
