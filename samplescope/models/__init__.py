"""Models: ``nn.Module`` classes, each built from a dataclass config."""

from samplescope.models.cnn import CNNConfig, SmallCNN, count_parameters
from samplescope.models.mlp import MLP, MLPConfig

__all__ = ["MLP", "CNNConfig", "MLPConfig", "SmallCNN", "count_parameters"]
