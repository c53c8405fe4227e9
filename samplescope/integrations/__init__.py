"""Built-in integrations, written with the public integration API only.

Besides the datasets (``mnist``, ``digits``, ``breast_cancer``), integrations without code:
:func:`from_arrays`, :func:`from_dataframe` (samplescope/integrations/arrays.py) and
:func:`from_image_folder` (samplescope/integrations/image_folder.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from samplescope.integrations.arrays import from_arrays, from_dataframe
from samplescope.integrations.image_folder import from_image_folder

__all__ = ["from_arrays", "from_dataframe", "from_image_folder", "rebuild_integration"]


def rebuild_integration(run_path: str | Path, recipe: dict[str, Any]) -> Any:
    """The no-code integration a run recorded in ``run.json``'s ``integration.rebuild``, from data only."""
    from samplescope.errors import RunError
    from samplescope.integrations import arrays, image_folder

    kind = recipe.get("kind")
    if kind == "arrays":
        return arrays.rebuild(run_path, recipe)
    if kind == "image_folder":
        return image_folder.rebuild(recipe)
    raise RunError(f"Run {run_path} names a no-code integration of kind {kind!r}, which this samplescope does not know.")
