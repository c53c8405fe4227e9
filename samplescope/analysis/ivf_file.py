"""IVF lists in a file of their own: filled block by block, read back memory-mapped.

faiss's ``IndexIVFFlat`` keeps its lists (a copy of every indexed vector and its id: 4 D + 8
bytes a row, 264 at D = 64) in the process's memory while rows are added, in vectors grown
by doubling, and its index file holds them inline. Here they go to a file instead:

    lists = fill(index, path, assign, rows)    # a trained, empty IVF index -> lists in ``path``
    names = write(index, folder)               # the three files below (from either kind of lists)
    index = read(folder)                       # the index, its lists memory-mapped read-only

The lists file is laid out as faiss's ``OnDiskInvertedLists`` lays out lists whose capacity
equals their size (its header documents it): list 0's codes (size x code_size bytes), then
its ids (size x int64), then list 1's, and so on. Their sizes are a ``.npy`` beside it, and
the rest of the index (header, quantizer) is a faiss file with empty lists
(:data:`~samplescope.store.layout.NEIGHBOR_IVF`): a samplescope that predates this layout
finds no ``knn_index.faiss`` there and searches the run exactly (right answers, slower) rather
than read empty lists.

Rows are written to each list in row order, as ``index.add`` appends them, so an index
filled here answers every query exactly as one filled by ``add`` (tested).

Reading never goes through faiss's own reader of on-disk lists: the sizes and the file's
length are checked against each other and against the header first, so a truncated or edited
run folder is a one-line :class:`~samplescope.errors.RunError`, not a crash (a mapping that
runs past the end of its file faults when it is read).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from samplescope.errors import RunError
from samplescope.store import layout
from samplescope.store.folder import allocate

__all__ = ["FILES", "fill", "read", "write"]

#: the files :func:`write` writes (layout names): the index without its lists, the sizes, the lists
FILES = (layout.NEIGHBOR_IVF, layout.NEIGHBOR_IVF_SIZES, layout.NEIGHBOR_IVF_LISTS)
_ID_BYTES = 8  # faiss idx_t
_FILL_ROWS = 65_536  # rows gathered and written at a time


def _allocate(path: Path, size: int) -> None:
    """A new file of ``size`` bytes whose blocks exist now (a full disk fails here, not later
    with SIGBUS when a page of the mapping is written back)."""
    with open(path, "wb") as f:
        f.truncate(size)
        allocate(f.fileno(), size)


def _on_disk(index: Any, path: Path, sizes: np.ndarray, read_only: bool) -> Any:
    """faiss ``OnDiskInvertedLists`` over the existing file ``path`` (its length already checked)."""
    import faiss

    lists = faiss.OnDiskInvertedLists(index.nlist, index.code_size, str(path))
    lists.totsize = int(sizes.sum()) * (index.code_size + _ID_BYTES)
    lists.read_only = read_only
    lists.prefetch_nthread = 0  # no helper threads touching pages ahead of a search
    if lists.totsize:
        lists.do_mmap()
    sizes = np.ascontiguousarray(sizes, dtype=np.uint64)
    lists.set_all_lists_sizes(faiss.swig_ptr(sizes))  # offsets by the sizes: no resize, no slots
    return lists


def _attach(index: Any, lists: Any, ntotal: int) -> Any:
    """Give ``index`` its lists (it owns them from here; the Python object stops owning them)."""
    index.replace_invlists(lists, True)
    lists.this.disown()
    index.ntotal = int(ntotal)
    return index


def fill(index: Any, path: str | Path, assign: np.ndarray, rows: Callable[[np.ndarray], np.ndarray]) -> Any:
    """Fill the trained, empty IVF ``index`` with every row, its lists in the new file ``path``.

    ``assign`` (N,) is each row's list (what ``index.quantizer.assign`` gave), ``rows(ids)``
    the prepared (len(ids), D) float32 vectors of those rows. Memory: the (N,) order of the
    rows by list and one block of gathered rows; the lists are file pages. Returns ``index``."""
    import faiss

    path = Path(path)
    assign = np.asarray(assign)
    n, nlist, code_size = len(assign), int(index.nlist), int(index.code_size)
    if index.ntotal != 0:
        raise RunError(f"ivf_file.fill: the index already holds {index.ntotal} rows; give it an empty one")
    sizes = np.bincount(assign, minlength=nlist).astype(np.int64)
    if len(sizes) != nlist:
        raise RunError(f"ivf_file.fill: a row is assigned list {int(assign.max())} of {nlist}")
    _allocate(path, n * (code_size + _ID_BYTES))
    lists = _on_disk(index, path, sizes, read_only=False)
    order = np.argsort(assign, kind="stable")  # by list, each list's rows in row order (as add appends)
    starts = np.concatenate([[0], np.cumsum(sizes)])  # list l's rows: order[starts[l]:starts[l + 1]]
    for at in range(0, n, _FILL_ROWS):
        ids = order[at : at + _FILL_ROWS]
        end = at + len(ids)
        codes = np.ascontiguousarray(rows(ids), dtype=np.float32)
        if codes.shape != (len(ids), code_size // 4):
            raise RunError(f"ivf_file.fill: rows() gave {codes.shape}, expected ({len(ids)}, {code_size // 4})")
        ids64 = np.ascontiguousarray(ids, dtype=np.int64)
        first = int(np.searchsorted(starts, at, side="right")) - 1
        last = int(np.searchsorted(starts, end - 1, side="right")) - 1
        for lst in range(first, last + 1):
            lo, hi = max(int(starts[lst]), at), min(int(starts[lst + 1]), end)
            if hi > lo:
                lists.update_entries(lst, lo - int(starts[lst]), hi - lo,
                                     faiss.swig_ptr(ids64[lo - at : hi - at]),
                                     faiss.swig_ptr(codes[lo - at : hi - at].view(np.uint8)))
    return _attach(index, lists, n)


def write(index: Any, folder: str | Path) -> list[str]:
    """Write ``index`` as :data:`FILES` in ``folder``; returns their names.

    An index whose lists already lie in ``folder``'s lists file (:func:`fill` or :func:`read`
    there) writes only its header and sizes."""
    import faiss

    folder = Path(folder)
    nlist, code_size = int(index.nlist), int(index.code_size)
    invlists = faiss.downcast_InvertedLists(index.invlists)
    sizes = np.array([invlists.list_size(i) for i in range(nlist)], dtype=np.int64)
    target = folder / layout.NEIGHBOR_IVF_LISTS
    here = isinstance(invlists, faiss.OnDiskInvertedLists) and Path(invlists.filename).resolve() == target.resolve()
    if not here:
        _allocate(target, int(sizes.sum()) * (code_size + _ID_BYTES))
        with open(target, "r+b") as f:
            for i in range(nlist):
                size = int(sizes[i])
                if size:
                    f.write(faiss.rev_swig_ptr(invlists.get_codes(i), size * code_size).tobytes())
                    f.write(faiss.rev_swig_ptr(invlists.get_ids(i), size).astype(np.int64).tobytes())
    np.save(folder / layout.NEIGHBOR_IVF_SIZES, sizes, allow_pickle=False)
    header = faiss.IndexIVFFlat(index.quantizer, index.d, nlist, index.metric_type)
    header.nprobe, header.is_trained = index.nprobe, True
    header.ntotal = int(sizes.sum())  # with empty lists: read() checks the sizes against it
    faiss.write_index(header, str(folder / layout.NEIGHBOR_IVF))
    return list(FILES)


def read(folder: str | Path, n_rows: int, dim: int) -> Any:
    """The index :func:`write` wrote in ``folder``, its lists memory-mapped read-only; every
    size checked first against ``n_rows`` and ``dim`` (the run's latent) and the lists file."""
    import faiss

    folder = Path(folder)
    header_file, sizes_file, lists_file = (folder / name for name in FILES)
    fix = f"run `samplescope analyze {folder}` again"
    try:
        index = faiss.read_index(str(header_file), faiss.IO_FLAG_READ_ONLY)
        sizes = np.load(sizes_file, allow_pickle=False)
    except (OSError, RuntimeError, ValueError) as exc:
        raise RunError(f"{header_file.name} / {sizes_file.name} in {folder} cannot be read ({exc}); {fix}") from exc
    if not isinstance(index, faiss.IndexIVFFlat):  # read_index gives the most derived class
        raise RunError(f"{header_file} is not an IVF-flat index ({type(index).__name__}); {fix}")
    code_size = int(index.code_size)
    expected = (index.nlist,)
    if (sizes.dtype.kind not in "iu" or sizes.shape != expected or (sizes < 0).any()
            or int(sizes.sum()) != n_rows or index.ntotal != n_rows or index.d != dim
            or code_size != 4 * dim):
        raise RunError(
            f"{sizes_file.name} ({sizes.dtype} {sizes.shape}, {int(sizes.sum()) if sizes.size else 0} rows) and "
            f"{header_file.name} ({index.nlist} lists, {index.ntotal} rows of {index.d} values) do not match the "
            f"latent ({n_rows} x {dim}); {fix}"
        )
    length = n_rows * (code_size + _ID_BYTES)
    actual = lists_file.stat().st_size if lists_file.exists() else -1
    if actual != length:
        raise RunError(f"{lists_file} holds {max(actual, 0)} bytes where its sizes need {length}; {fix}")
    lists = _on_disk(index, lists_file, sizes, read_only=True)
    return _attach(index, lists, n_rows)
