"""The dataset-integration API."""

from samplescope.integration.check import CheckReport, check_integration
from samplescope.integration.core import Batch, Integration, Sample, Subset
from samplescope.integration.loader import load_integration

__all__ = ["Batch", "CheckReport", "Integration", "Sample", "Subset", "check_integration", "load_integration"]
