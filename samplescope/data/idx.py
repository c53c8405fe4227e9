"""Read IDX files, the format the original MNIST files use.

An IDX file is a header followed by raw big-endian values:

    bytes 0-1   zero
    byte  2     element type code (0x08 = uint8, ... see ``_DTYPES``)
    byte  3     number of dimensions, n
    n * 4 bytes each dimension's size, big-endian uint32
    then        prod(dims) values

The magic number is bytes 0-3 read as one big-endian uint32: 2051 (0x00000803)
for MNIST images (uint8, 3 dims), 2049 (0x00000801) for labels (uint8, 1 dim).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from samplescope.errors import DataError

__all__ = ["IdxHeader", "read_idx", "read_idx_header"]

# IDX type code -> numpy dtype (big-endian as stored on disk).
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class IdxHeader:
    """What an IDX header says: magic number, element type, shape, data offset."""

    magic: int
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_idx_header(path: Path | str, *, label: str | None = None) -> IdxHeader:
    """Read and check the header of the IDX file at ``path``.

    Checks the magic number, the element type, and that the file size equals
    header + prod(dims) * itemsize. ``label`` names the file in error messages
    (defaults to the path), for files checked under a temporary name.
    """
    path = Path(path)
    what = label or str(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(4)
        if len(head) < 4:
            raise DataError(
                f"{what}: not an IDX file, only {size} bytes (a header needs at least 4); "
                "delete it and fetch it again."
            )
        (magic,) = struct.unpack(">I", head)
        if head[:2] != b"\x00\x00" or head[2] not in _DTYPES or head[3] == 0:
            hint = (
                " It looks gzip-compressed: decompress it first (gunzip)."
                if head[:2] == _GZIP_MAGIC
                else ""
            )
            raise DataError(
                f"{what}: bad IDX magic number {magic} (0x{magic:08x}); expected 0x0000TTNN "
                f"with type TT in {{{', '.join(f'0x{t:02x}' for t in _DTYPES)}}} and NN >= 1 "
                f"dims (MNIST: 2051 images, 2049 labels).{hint} Delete the file and fetch it "
                "again."
            )
        ndim = head[3]
        dims_raw = f.read(4 * ndim)
    offset = 4 + 4 * ndim
    if len(dims_raw) < 4 * ndim:
        raise DataError(
            f"{what}: truncated IDX header: magic says {ndim} dims, needs {offset} bytes, "
            f"file has {size}; delete it and fetch it again."
        )
    header = IdxHeader(
        magic=magic,
        dtype=_DTYPES[head[2]],
        shape=struct.unpack(f">{ndim}I", dims_raw),
        offset=offset,
    )
    expected = offset + header.data_bytes
    if size != expected:
        kind = "truncated" if size < expected else "too long"
        raise DataError(
            f"{what}: {kind}: header says shape {header.shape} of {header.dtype.name}, "
            f"so {expected} bytes expected, file has {size}; delete it and fetch it again."
        )
    return header


def read_idx(path: Path | str) -> np.ndarray:
    """Read the IDX file at ``path`` into a writable, native-byte-order array."""
    path = Path(path)
    header = read_idx_header(path)
    buf = bytearray(header.data_bytes)
    with path.open("rb") as f:
        f.seek(header.offset)
        n = f.readinto(buf)
    if n != header.data_bytes:  # the file changed between the header check and the read
        raise DataError(
            f"{path}: truncated: expected {header.data_bytes} data bytes, read {n}; "
            "delete it and fetch it again."
        )
    arr = np.frombuffer(buf, dtype=header.dtype).reshape(header.shape)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr
