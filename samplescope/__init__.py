"""samplescope: see a trained classifier's view of its dataset and find where and why it fails.

The data flows one way: integration -> train -> analyze -> store -> serve / report.
``import samplescope`` stays light: torch and the analysis libraries load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from samplescope.errors import SamplescopeError
from samplescope.integration import (
    Batch,
    Integration,
    Sample,
    Subset,
    check_integration,
    load_integration,
)

if TYPE_CHECKING:
    from samplescope.run import Run

__version__ = "0.1.0"


def open_run(
    path: Any, *, trust: bool = False, integration: Any = None, model: Any = None, device: str | None = "auto"
) -> Run:
    """Open a run folder; runs none of its code unless trusted. See :func:`samplescope.run.open_run`."""
    from samplescope.run import open_run as _open_run

    return _open_run(path, trust=trust, integration=integration, model=model, device=device)


def train_run(*args: Any, **kwargs: Any) -> Any:
    """Train the default CNN on an integration and write a run; see :func:`samplescope.pipeline.train.train_run`."""
    from samplescope.pipeline.train import train_run as _train_run

    return _train_run(*args, **kwargs)


def create_run(*args: Any, **kwargs: Any) -> Any:
    """Make a run from your own trained ``nn.Module``; see :func:`samplescope.pipeline.train.create_run`."""
    from samplescope.pipeline.train import create_run as _create_run

    return _create_run(*args, **kwargs)


def compare(a: Any, b: Any) -> Any:
    """What run ``b`` fixed, broke and kept against run ``a``; see :func:`samplescope.compare.compare`."""
    from samplescope.compare import compare as _compare

    return _compare(a, b)


def analyze_run(*args: Any, **kwargs: Any) -> Any:
    """Analyse a run in place; see :func:`samplescope.pipeline.analyze.analyze_run`."""
    from samplescope.pipeline.analyze import analyze_run as _analyze_run

    return _analyze_run(*args, **kwargs)


__all__ = [
    "Batch",
    "Integration",
    "Sample",
    "SamplescopeError",
    "Subset",
    "analyze_run",
    "check_integration",
    "compare",
    "create_run",
    "load_integration",
    "open_run",
    "train_run",
]
