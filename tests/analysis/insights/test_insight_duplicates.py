"""Duplicates finds copies inside a subset and leakage across subsets."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from samplescope.analysis.insights import Duplicates
from samplescope.errors import SamplescopeError

from . import make_data, plant_duplicates, plant_leakage


def _pairs(insight) -> set[tuple[int, int]]:
    return {(a, b) for a, b, _ in insight.details["pairs"]}


def _by_kind(insights, kind, subset=None):
    return [
        i
        for i in insights
        if i.kind == kind and (subset is None or i.details.get("subset", None) == subset)
    ]


def test_leakage_and_duplicates_are_found_in_pixel_space():
    d = make_data(n_per_class=400, seed=0)
    leaked = plant_leakage(d, n_exact=20, n_near=20)
    copies = plant_duplicates(d, "train", n=10)
    insights = Duplicates().find(d.context())

    [leak] = _by_kind(insights, "leakage")
    recall = len(_pairs(leak) & set(leaked)) / len(leaked)
    print(f"leakage recall {recall:.2f} ({leak.details['n_pairs']} pairs reported)")
    assert recall >= 0.9, f"leakage recall {recall:.2f}"
    assert leak.details["subsets"] == ["train", "validation"]
    assert leak.details["n_identical_pixels"] >= 20
    assert leak.details["distance_metric"] == "pixel_l2"
    assert "validation samples" in leak.text and "near-duplicate in train" in leak.text

    [dup] = _by_kind(insights, "duplicate", "train")
    found = {tuple(sorted(p)) for p in _pairs(dup)}
    recall = len(found & {tuple(sorted(p)) for p in copies}) / len(copies)
    print(f"duplicate recall {recall:.2f}")
    assert recall >= 0.9
    assert not _by_kind(insights, "duplicate", "validation")


def test_leakage_found_in_latent_space_without_inputs():
    d = make_data(n_per_class=400, seed=1)
    leaked = plant_leakage(d, n_exact=20, n_near=0)
    [leak] = _by_kind(Duplicates().find(d.context(with_inputs=False)), "leakage")
    recall = len(_pairs(leak) & set(leaked)) / len(leaked)
    assert recall >= 0.9, f"latent leakage recall {recall:.2f}"
    assert leak.details["distance_metric"] == "latent_cosine"


def test_clean_data_has_no_duplicates():
    assert Duplicates().find(make_data(n_per_class=400, seed=2).context()) == []


def test_a_large_group_of_copies_is_found_in_full():
    d = make_data(n_per_class=200, seed=3)
    rows = d.rows_of("train")[:30]
    d.pixels[rows] = d.pixels[rows[0]]
    finder = Duplicates(n_candidates=2)
    [dup] = finder.find(d.context())
    assert set(d.sample_id[rows].tolist()) <= set(dup.sample_ids)
    assert dup.details["n_identical_pixels"] >= 29


def test_inputs_with_wrong_shape_are_rejected():
    d = make_data(n_per_class=20)
    ctx = d.context()
    ctx.inputs = lambda rows: np.zeros((len(rows) + 1, 4), np.float32)
    with pytest.raises(SamplescopeError, match=r"inputs returned shape \(\d+, 4\) for \d+ rows"):
        Duplicates().find(ctx)


# --------------------------------------------------------------------------- collapsed latent


def test_a_collapsed_latent_gives_no_false_leakage_but_planted_copies_are_still_found():
    """A latent after a ReLU that maps many different samples to one direction: cosine
    distance ~0 between them means nothing, so only the pairs the inputs confirm remain."""
    d = make_data(n_per_class=400, seed=5)
    leaked = plant_leakage(d, n_exact=15, n_near=15)
    # collapse: every sample of a class gets the same direction (a dead-ReLU latent)
    d.latent = np.zeros_like(d.latent)
    d.latent[np.arange(d.n), d.labels % d.latent.shape[1]] = 1.0 + 0.001 * np.random.default_rng(0).random(d.n)
    before = Duplicates(pixel_threshold=0.0, aligned_threshold=0.0, latent_spread=np.inf)
    spurious = _by_kind(before.find(d.context()), "leakage")
    assert spurious and spurious[0].details["n_leaked"] > 100  # trusting the latent: a false alarm

    insights = Duplicates().find(d.context())
    [leak] = _by_kind(insights, "leakage")
    found = _pairs(leak)
    assert len(found & set(leaked)) / len(leaked) >= 0.9
    assert len(found - set(leaked)) == 0, f"{len(found - set(leaked))} false pairs"
    assert not _by_kind(Duplicates().find(d.context(with_inputs=False)), "leakage")


# --------------------------------------------------------------------------- shifted copies


def _digit_images(n_train: int = 1000, n_val: int = 600):
    """sklearn's bundled 8x8 digits upsampled to 24x24 (scipy zoom), values in [0, 1]."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    data = load_digits()
    images = zoom(data.images[: n_train + n_val] / 16.0, (1, 3, 3), order=1).clip(0, 1)
    images = np.pad(images, ((0, 0), (2, 2), (2, 2))).astype(np.float32)  # (N, 28, 28)
    return images, data.target[: n_train + n_val], n_train


def _copies(images: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import shift, zoom

    if kind == "exact":
        return images.copy()
    if kind == "shifted":
        return np.stack([shift(im, rng.choice([-2, -1, 1, 2], 2), order=0) for im in images])
    if kind == "rescaled":
        out = []
        for im in images:
            z = zoom(im, 1.1, order=1)
            o = (z.shape[0] - 28) // 2
            out.append(z[o : o + 28, o : o + 28])
        return np.stack(out).clip(0, 1)
    # re-encoded: 5-bit quantisation plus faint noise, as a lossy re-save does
    return (np.round(images * 31) / 31 + rng.normal(0, 0.01, images.shape)).clip(0, 1)


def test_shifted_rescaled_and_reencoded_copies_are_leakage():
    import pandas as pd

    from samplescope.analysis.insights import InsightContext

    images, labels, n_train = _digit_images()
    rng = np.random.default_rng(0)
    planted: dict[str, set[tuple[int, int]]] = {}
    sources = rng.choice(n_train, 4 * 25, replace=False)
    targets = n_train + rng.choice(len(images) - n_train, 4 * 25, replace=False)
    for i, kind in enumerate(("exact", "shifted", "rescaled", "reencoded")):
        src, dst = sources[25 * i : 25 * (i + 1)], targets[25 * i : 25 * (i + 1)]
        images[dst] = _copies(images[src], kind, rng)
        labels[dst] = labels[src]
        planted[kind] = {(int(a), int(b)) for a, b in zip(src, dst, strict=True)}
    n = len(images)
    flat = images.reshape(n, -1)
    samples = pd.DataFrame({
        "sample_id": np.arange(n), "subset": np.where(np.arange(n) < n_train, "train", "validation"),
        "label": labels, "prediction": labels, "loss": np.full(n, 0.01), "correct": True,
    })
    latent = flat @ rng.normal(size=(flat.shape[1], 32)).astype(np.float32)  # not shift-invariant
    ctx = InsightContext(samples=samples, latent=latent, inputs=lambda rows: flat[np.asarray(rows)],
                         input_shape=(1, 28, 28))
    [leak] = _by_kind(Duplicates().find(ctx), "leakage")
    found = _pairs(leak)
    recall = {k: len(found & p) / len(p) for k, p in planted.items()}
    false = found - set().union(*planted.values())
    print(f"recall {recall}, false pairs {len(false)}")
    assert min(recall.values()) >= 0.9, recall
    assert len(false) <= 2, false
    assert leak.details["n_aligned_only"] >= 40  # shifted and rescaled copies need the alignment
    assert "only once aligned" in leak.text
    assert leak.details["action"]["verb"] == "remove_duplicates"
    # without the image shape, the shifted copies are not found in raw pixels
    ctx.input_shape = None
    [raw] = _by_kind(Duplicates().find(ctx), "leakage")
    assert len(_pairs(raw) & planted["shifted"]) / 25 < 0.5


def test_table_rows_are_copies_only_when_equal_not_when_similar_in_large_features():
    """scikit-learn's breast-cancer table (30 raw features, a few in the thousands): 10 training
    rows copied into validation are a leak; nothing else is (the pixel-scale cut paired 94.5%)."""
    from sklearn.datasets import load_breast_cancer

    from samplescope.analysis.insights.base import InsightContext

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    rng = np.random.default_rng(0)
    n_train = 455
    copies = rng.choice(n_train, 10, replace=False)
    x = np.concatenate([x, x[copies]])
    y = np.concatenate([y, y[copies]])
    n = len(x)
    subset = np.where(np.arange(n) < n_train, "train", "validation")
    probs = np.stack([1 - y * 0.9 - 0.05, y * 0.9 + 0.05], axis=1)
    frame = pd.DataFrame({"sample_id": np.arange(n), "subset": subset, "label": y, "prediction": y,
                          "loss": 0.1, "correct": True, "confidence": probs.max(1), "prob_0": probs[:, 0],
                          "prob_1": probs[:, 1]})
    latent = rng.normal(size=(n, 16)).astype(np.float32)  # a spread latent: no latent pairs
    ctx = InsightContext(samples=frame, latent=latent, inputs=lambda rows: x[np.asarray(rows)],
                         class_names=["malignant", "benign"], metadata_columns=[], input_shape=(30,))
    insights = Duplicates().find(ctx)
    [leak] = _by_kind(insights, "leakage")
    planted = {(int(c), n - 10 + i) for i, c in enumerate(copies)}
    assert _pairs(leak) == planted
    assert "input distance" in leak.text or "identical" in leak.text
    assert not _by_kind(insights, "duplicate")


def _brute_pixel_distances(pixels: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    diff = pixels[table["row_a"].to_numpy()].astype(np.float64) - pixels[table["row_b"].to_numpy()]
    return np.sqrt((diff**2).sum(axis=1))


@pytest.mark.parametrize("input_shape", [None, (8, 8)])  # (8, 8): the aligned space too
def test_pair_distances_in_small_chunks_equal_numpy(input_shape):
    d = make_data(n_per_class=200, seed=4)
    plant_leakage(d, n_exact=15, n_near=15)
    rows = d.rows_of("train")[:12]
    d.pixels[rows] = d.pixels[rows[0]]  # a group of copies: measured without fetching
    whole = Duplicates()
    whole.find(d.context(input_shape=input_shape))
    chunked = Duplicates(chunk_size=7)  # pairs fetched and measured 7 at a time
    chunked.find(d.context(input_shape=input_shape))
    pd.testing.assert_frame_equal(whole.pairs_, chunked.pairs_)
    table = chunked.pairs_
    assert len(table) >= 11 + 15
    np.testing.assert_allclose(table["pixel_distance"], _brute_pixel_distances(d.pixels, table), rtol=1e-6, atol=1e-6)
    copies = table["row_a"].isin(rows) & table["row_b"].isin(rows)
    assert copies.sum() >= 11 and (table.loc[copies, "pixel_distance"] == 0).all()


def test_copies_are_listed_once_as_stars_and_every_held_copy_leaks():
    """Copies across subsets: a star per subset, every copy against the other subset's first."""
    d = make_data(n_per_class=100, seed=6)
    train, held = d.rows_of("train")[:3], d.rows_of("validation")[:2]
    copies = np.r_[train, held]
    d.pixels[copies] = d.pixels[train[0]]
    finder = Duplicates(chunk_size=2)
    finder.find(d.context())
    table = finder.pairs_
    among = table["row_a"].isin(copies) & table["row_b"].isin(copies)
    got = {tuple(sorted(p)) for p in table.loc[among, ["row_a", "row_b"]].to_numpy().tolist()}
    t0, v0 = int(train[0]), int(held[0])
    want = {tuple(sorted((t0, int(r)))) for r in copies if r != t0}
    want |= {tuple(sorted((v0, int(r)))) for r in copies if r != v0}
    assert got == want and len(table.loc[among]) == len(want)
    assert (table.loc[among, "pixel_distance"] == 0).all()
    assert (finder.leaks_from_[held] >= 0).all() and (finder.duplicate_of_[train] >= 0).all()


def test_a_digest_collision_is_measured_not_taken_for_a_copy(monkeypatch):
    """Every input given the same digest: only inputs that are really equal have distance 0."""
    from samplescope.analysis import sketch

    monkeypatch.setattr(sketch, "_digest", lambda x: np.zeros(len(x), np.int64))
    d = make_data(n_per_class=100, seed=5)
    rows = d.rows_of("train")[:5]
    d.pixels[rows] = d.pixels[rows[0]]
    finder = Duplicates(chunk_size=16)
    finder.find(d.context())
    table = finder.pairs_
    np.testing.assert_allclose(table["pixel_distance"], _brute_pixel_distances(d.pixels, table), rtol=1e-6, atol=1e-6)
    zero = table["pixel_distance"] == 0
    assert set(table.loc[zero, "row_a"]) | set(table.loc[zero, "row_b"]) <= set(rows.tolist())
    assert zero.sum() >= 4


def _copy_groups(size: int, subpixel: bool, n_groups: int = 30):
    """sklearn's digits (as in _digit_images, all training) plus ``n_groups`` images with
    ``size - 1`` shifted copies each; returns the context and each row's group (-1: none)."""
    from scipy.ndimage import shift

    from samplescope.analysis.insights import InsightContext

    images, labels, _ = _digit_images(n_train=1797, n_val=0)
    rng = np.random.default_rng(1)
    sources = rng.choice(len(images), n_groups, replace=False)
    group = np.full(len(images), -1)
    group[sources] = np.arange(n_groups)
    parts, part_labels, part_groups = [images], [labels], [group]
    for g, s in enumerate(sources):
        moves = rng.uniform(-1.5, 1.5, (size - 1, 2)) if subpixel else rng.choice([-2, -1, 1, 2], (size - 1, 2))
        parts.append(np.stack([shift(images[s], m, order=1 if subpixel else 0) for m in moves]).clip(0, 1))
        part_labels.append(np.full(size - 1, labels[s]))
        part_groups.append(np.full(size - 1, g))
    images, labels, group = np.concatenate(parts), np.concatenate(part_labels), np.concatenate(part_groups)
    n = len(images)
    flat = images.reshape(n, -1).astype(np.float32)
    samples = pd.DataFrame({"sample_id": np.arange(n), "subset": "train", "label": labels, "prediction": labels,
                            "loss": np.full(n, 0.01), "correct": True})
    latent = flat @ rng.normal(size=(flat.shape[1], 32)).astype(np.float32)  # not shift-invariant
    ctx = InsightContext(samples=samples, latent=latent, inputs=lambda rows: flat[np.asarray(rows)],
                         input_shape=(1, 28, 28))
    return ctx, group


@pytest.mark.parametrize("subpixel", [False, True], ids=["whole-pixel", "sub-pixel"])
def test_every_member_of_a_large_group_of_shifted_copies_is_a_duplicate(subpixel):
    # 8 copies of an image: each one's 4th nearest neighbour is another copy, so a reference
    # taken there (as before groups were counted) missed about a quarter of them
    ctx, group = _copy_groups(8, subpixel)
    members = np.flatnonzero(group >= 0)

    def marks(finder):
        finder.find(ctx)
        dup = finder.duplicate_of_
        right = (dup[members] >= 0) & (group[np.maximum(dup[members], 0)] == group[members])
        wrong = int(((dup >= 0) & ((group < 0) | (group[np.maximum(dup, 0)] != group))).sum())
        return right.mean(), wrong

    recall, wrong = marks(Duplicates())
    old_recall, old_wrong = marks(Duplicates(aligned_group=1, aligned_exact=0.0))
    print(f"recall {recall:.3f} (one copy looked past, no exact rule: {old_recall:.3f}), wrong {wrong} ({old_wrong})")
    assert recall == 1.0
    assert old_recall < 0.9  # the case this guards
    assert wrong <= old_wrong + 2  # the digits' own near-copies; looking past groups adds none


@pytest.mark.parametrize("subpixel", [False, True], ids=["whole-pixel", "sub-pixel"])
def test_each_rule_alone_finds_its_groups(subpixel):
    # whole-pixel shifts are the same picture after alignment (the exact rule, no group
    # counting needed); sub-pixel ones differ by interpolation (the group rule, no exact rule)
    ctx, group = _copy_groups(8, subpixel)
    finder = Duplicates(aligned_exact=0.0) if subpixel else Duplicates(aligned_group=1)
    finder.find(ctx)
    members = np.flatnonzero(group >= 0)
    dup = finder.duplicate_of_
    assert ((dup[members] >= 0) & (group[np.maximum(dup[members], 0)] == group[members])).mean() == 1.0


def test_copies_and_reference_count_the_neighbours_before_the_last_jump():
    from samplescope.analysis.insights.duplicates import _copies_and_reference

    inf = np.inf
    e = np.array([
        [0.1, 1.0, 1.1, 1.2, 1.3, 1.4],  # one copy: its 4th (k0) distance is the reference
        [0.1, 0.1, 0.12, 0.11, 1.0, 1.1],  # four copies (sorted or not, the last jump counts)
        [0.9, 1.0, 1.1, 1.2, 1.3, 1.4],  # none
        [0.1, 1.0, inf, inf, inf, inf],  # fewer neighbours than k0: no reference, both count
    ])
    e = np.sort(e, axis=1)
    copies, ref = _copies_and_reference(e, 4, 0.5)
    assert copies.tolist() == [1, 3, 0, 2]  # (the threshold still applies)
    # row 1: 0.1 0.1 0.11 0.12 1.0 1.1; c = 3 (0.11 <= 0.5 * 1.1); c = 4 would need e[6]
    assert ref.tolist() == [1.2, 1.1, 1.2, inf]


def test_pairs_are_measured_a_group_at_a_time():
    from samplescope.analysis.insights.duplicates import _by_component

    rng = np.random.default_rng(0)
    group = rng.integers(0, 50, 400)  # 50 groups of rows, pairs only inside a group
    pairs = []
    for g in range(50):  # each group connected: a chain through its rows, and random extras
        rows = rng.permutation(np.flatnonzero(group == g))
        pairs += [(min(a, b), max(a, b)) for a, b in itertools.pairwise(rows)]
        for _ in range(6):
            a, b = rng.choice(rows, 2, replace=False)
            pairs.append((min(a, b), max(a, b)))
    pairs = np.unique(np.array(pairs), axis=0)  # in row order: the groups interleave
    order = _by_component(pairs, len(group))
    assert sorted(order.tolist()) == list(range(len(pairs)))
    labels = group[pairs[order, 0]]
    assert (np.diff(labels) != 0).sum() == len(np.unique(labels)) - 1  # each group's pairs together
    assert len(_by_component(np.empty((0, 2), np.int64), 5)) == 0
