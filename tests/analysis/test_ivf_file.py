"""IVF lists in a file (samplescope/analysis/ivf_file.py): the same answers as faiss's own
in-memory lists, a damaged file an error rather than a crash, both saved layouts readable."""

from __future__ import annotations

import numpy as np
import pytest

from samplescope.analysis import ivf_file
from samplescope.analysis.neighbors import NeighborIndex
from samplescope.errors import RunError
from samplescope.store import layout


@pytest.fixture(scope="module")
def mixture() -> np.ndarray:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(20, 12)) * 3
    return (centres[rng.integers(0, 20, 8000)] + rng.normal(size=(8000, 12))).astype(np.float32)


@pytest.mark.parametrize("flat_quantizer_max", [10**6, 0])
def test_filled_lists_equal_faiss_add(mixture, tmp_path, flat_quantizer_max, monkeypatch) -> None:
    """Lists filled block by block into a file, and lists added in memory from the rows' walks
    in coarse order, hold what faiss's own index.add puts there: the same ids in the same order
    and the same vectors, list for list, so every search answers the same."""
    import faiss

    from samplescope.analysis import neighbors

    monkeypatch.setattr(ivf_file, "_FILL_ROWS", 333)  # lists cut across many blocks
    monkeypatch.setattr(neighbors, "_EXACT_BLOCK", 1500)  # rows assigned (and ordered) in blocks
    params = {"exact_max": 0, "list_rows": 40, "flat_quantizer_max": flat_quantizer_max}
    memory = NeighborIndex(**params).fit(mixture)
    disk = NeighborIndex(**params).fit(mixture, spill_to=tmp_path)
    reference = faiss.clone_index(memory.index_)
    reference.reset()
    reference.add(memory._prepare(mixture))  # faiss walks each row to its list, in row order
    for index in (memory.index_, disk.index_):
        a, b = reference.invlists, faiss.downcast_InvertedLists(index.invlists)
        assert index.ntotal == len(mixture)
        for i in range(reference.nlist):
            size = a.list_size(i)
            assert b.list_size(i) == size
            if size:
                np.testing.assert_array_equal(faiss.rev_swig_ptr(a.get_ids(i), size),
                                              faiss.rev_swig_ptr(b.get_ids(i), size))
                assert (faiss.rev_swig_ptr(a.get_codes(i), size * a.code_size).tobytes()
                        == faiss.rev_swig_ptr(b.get_codes(i), size * b.code_size).tobytes())
    assert isinstance(faiss.downcast_InvertedLists(disk.index_.invlists), faiss.OnDiskInvertedLists)
    assert faiss.downcast_InvertedLists(disk.index_.invlists).read_only
    np.testing.assert_array_equal(memory.graph_rows_, disk.graph_rows_)
    np.testing.assert_array_equal(memory.graph_dist_, disk.graph_dist_)
    queries = mixture[:50] + 0.1
    for x, y in zip(memory.query_vectors(queries, k=30), disk.query_vectors(queries, k=30), strict=True):
        np.testing.assert_array_equal(x, y)
    assert (tmp_path / layout.NEIGHBOR_IVF_LISTS).stat().st_size == len(mixture) * (4 * 12 + 8)


def _saved(mixture, folder) -> NeighborIndex:
    index = NeighborIndex(exact_max=0, list_rows=40).fit(mixture, spill_to=folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [layout.NEIGHBOR_ROWS, layout.NEIGHBOR_DISTANCES, *ivf_file.FILES])
    return index


@pytest.mark.parametrize("damage", ["truncated", "longer", "sizes", "rows", "header"])
def test_a_damaged_index_is_a_one_line_error(mixture, tmp_path, damage) -> None:
    _saved(mixture, tmp_path)
    lists, sizes = tmp_path / layout.NEIGHBOR_IVF_LISTS, tmp_path / layout.NEIGHBOR_IVF_SIZES
    latent = mixture
    if damage == "truncated":  # a mapping past the file's end would fault when read
        with open(lists, "r+b") as f:
            f.truncate(lists.stat().st_size - 8)
    elif damage == "longer":
        with open(lists, "ab") as f:
            f.write(b"\0" * 8)
    elif damage == "sizes":
        s = np.load(sizes)
        s[0], s[1] = s[0] + 1, s[1] - 1  # the same total, a list running into the next one: allowed ...
        np.save(sizes, s)
        s[2] += 1  # ... one row more than the latent: not
        np.save(sizes, s)
    elif damage == "rows":
        latent = mixture[:-1]
    else:
        (tmp_path / layout.NEIGHBOR_IVF).write_bytes(b"not a faiss file")
    with pytest.raises(RunError, match="analyze") as info:
        ivf_file.read(tmp_path, len(latent), latent.shape[1])
    assert "\n" not in str(info.value)


def test_the_inline_layout_reads_and_a_new_save_replaces_it(mixture, tmp_path) -> None:
    """Runs analysed before the three files (and Ray-run analyses) have one faiss file with the
    lists inline: it loads; saving the other layout into the same folder removes it."""
    from samplescope.engines.stages import row_stages

    old = tmp_path / "old"
    old.mkdir()
    with row_stages(lambda *args: None):  # an engine that declines every call: lists in memory
        index = NeighborIndex(exact_max=0, list_rows=40).fit(mixture, spill_to=old)
    assert sorted(p.name for p in old.iterdir()) == sorted(
        [layout.NEIGHBOR_ROWS, layout.NEIGHBOR_DISTANCES, layout.NEIGHBOR_INDEX])
    rows = np.arange(0, len(mixture), 97)
    want = index.query(rows, k=25)
    loaded = NeighborIndex.load(old, mixture)
    for x, y in zip(loaded.query(rows, k=25), want, strict=True):
        np.testing.assert_array_equal(x, y)
    (tmp_path / "new").mkdir()
    _saved(mixture, tmp_path / "new").save(old)
    assert not (old / layout.NEIGHBOR_INDEX).exists()
    for x, y in zip(NeighborIndex.load(old, mixture).query(rows, k=25), want, strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_radius_tuned_l2_index_spills_too(mixture, tmp_path) -> None:
    """The duplicate finder's sketch indexes (l2, tuned to a radius) fill their lists into the
    analysis's scratch folder as the latent's does: the same graph as in memory."""
    params = {"metric": "l2", "exact_max": 0, "list_rows": 40, "graph_k": 5, "recall_radius": 0.5}
    memory = NeighborIndex(**params).fit(mixture)
    disk = NeighborIndex(**params).fit(mixture, spill_to=tmp_path)
    assert memory.nprobe_ == disk.nprobe_ and isinstance(disk.graph_rows_, np.memmap)
    np.testing.assert_array_equal(memory.graph_rows_, disk.graph_rows_)
    np.testing.assert_array_equal(memory.graph_dist_, disk.graph_dist_)
    with pytest.raises(Exception, match="only a cosine index"):
        disk.save(tmp_path / "run")
