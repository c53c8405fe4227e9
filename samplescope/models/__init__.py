"""Models: ``nn.Module`` classes, each built from a dataclass config."""

from samplescope.models.cnn import CNNConfig, SmallCNN, count_parameters

__all__ = ["CNNConfig", "SmallCNN", "count_parameters"]
