"""samplescope: see a trained classifier's view of its dataset and find where and why it fails."""

from samplescope.errors import SamplescopeError
from samplescope.integration import Batch, Integration, Sample, Subset, check_integration, load_integration

__version__ = "0.1.0"


def open_run(path):  # noqa: ANN001, ANN201 - re-exported lazily to keep `import samplescope` light
    """Open a run folder; see :class:`samplescope.run.Run`."""
    from samplescope.run import open_run as _open_run

    return _open_run(path)


__all__ = [
    "Batch",
    "Integration",
    "Sample",
    "SamplescopeError",
    "Subset",
    "check_integration",
    "load_integration",
    "open_run",
]
