"""Analyzers over a trained model and its latent space, one per module, one verb each.

- :mod:`.inference`: ``run_inference`` (logits + latent in one pass), ``prediction_columns``
- :mod:`.projection`: ``Projection(...).fit_transform(latent)`` -> (N, 2) map
- :mod:`.neighbors`: ``NeighborIndex().fit(latent)``: the one neighbour engine (kNN graph, queries)
- :mod:`.attribution`: ``Attribution(model, method).attribute(x, target)`` heat maps
- :mod:`.metrics`: confusion matrix, per-class metrics, binned aggregates

Names are imported from their module on first use, so ``from samplescope.analysis
import aggregate`` does not import torch, and nothing imports faiss, umap,
openTSNE or captum before it is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "attribution": ["ATTRIBUTION_METHODS", "Attribution", "default_gradcam_layer", "gradcam_batch"],
    "inference": [
        "InferenceResult",
        "default_latent_layer",
        "list_layers",
        "prediction_columns",
        "run_inference",
    ],
    "metrics": ["aggregate", "classification_metrics", "confusion_matrix", "trend"],
    "neighbors": ["NeighborIndex"],
    "projection": ["PROJECTION_METHODS", "Projection"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "ATTRIBUTION_METHODS",
    "PROJECTION_METHODS",
    "Attribution",
    "InferenceResult",
    "NeighborIndex",
    "Projection",
    "aggregate",
    "classification_metrics",
    "confusion_matrix",
    "default_gradcam_layer",
    "default_latent_layer",
    "gradcam_batch",
    "list_layers",
    "prediction_columns",
    "run_inference",
    "trend",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'samplescope.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"samplescope.analysis.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from samplescope.analysis.attribution import (
        ATTRIBUTION_METHODS,
        Attribution,
        default_gradcam_layer,
        gradcam_batch,
    )
    from samplescope.analysis.inference import (
        InferenceResult,
        default_latent_layer,
        list_layers,
        prediction_columns,
        run_inference,
    )
    from samplescope.analysis.metrics import (
        aggregate,
        classification_metrics,
        confusion_matrix,
        trend,
    )
    from samplescope.analysis.neighbors import NeighborIndex
    from samplescope.analysis.projection import PROJECTION_METHODS, Projection
