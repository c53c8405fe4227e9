"""Near-duplicates within a subset and leakage across subsets.

Two samples are duplicates when either

- their flattened inputs are within ``pixel_threshold * s`` in Euclidean
  distance, where ``s = sqrt(2 * total pixel variance)`` is the root-mean-square
  distance between two random samples. The threshold is thus scale-free: on
  MNIST (pixels in [0, 1]) s is about 10 and the default 0.1 gives about 1.0:
  the same image re-saved or lightly edited passes, another drawing of a digit
  does not (the median MNIST nearest-neighbour distance is 4.2, its 0.1%
  quantile 1.04). On real MNIST this reports 21 train pairs and 8
  train/validation pairs, all thin, straight 1s that are pixel for pixel
  nearly identical (distances 0.82-1.02). For a vector or token input (a 1-D
  input shape: a table's row, a sequence) the fraction is ``vector_threshold``
  (0.001): the same row up to rounding. Rows of a table that are merely similar in
  a few large-valued features are not copies (on scikit-learn's breast-cancer table
  the 0.1 cut paired 94.5% of the training rows); or
- (images) they are close **after alignment** (:mod:`.aligned`: each image
  re-centred on its centre of mass and rescaled to a fixed radius of gyration, then
  blurred with a Gaussian of ``aligned_sigma`` pixels), so copies shifted by a pixel
  or two, slightly rescaled or re-encoded still match. The distance is calibrated
  against each sample's own neighbourhood: the pair must be within
  ``aligned_ratio`` (0.5) of the ``aligned_k``-th (4th) nearest aligned neighbour's
  distance of either sample **and** within ``aligned_threshold * s_aligned`` (0.16);
  a copy is far nearer its original than any other drawing is, a distinct pair of
  similar digits is not (on MNIST the nearest/4th-nearest ratio of distinct
  samples has its 1st percentile at 0.57; shifted copies sit at ~0, rescaled and
  JPEG-75 re-encoded copies at 0.3-0.4, 90th percentile). An image may have many
  copies (a dataset repeated with shifts, frames of one scene): its nearest
  neighbours are then copies too, so the reference looks past them: a row's copies
  are its neighbours up to the last ``c`` (at most ``aligned_group``, 13) whose
  distance is within ``aligned_ratio`` of the ``(c + aligned_k - 1)``-th, and its
  reference distance is that one. A pair within ``aligned_exact * s_aligned``
  (0.01: the same picture after alignment up to interpolation rounding; distinct
  MNIST digits' nearest aligned neighbour has its 0.1% quantile at 0.048) is a copy
  whatever its neighbourhood, so a group larger than that still is; or
- their latent vectors have cosine distance <= ``latent_threshold`` (1e-4) **and**
  the latent has spread there: the distance is at most ``latent_spread`` (1%) of the
  median distance to the sample's 16 graph neighbours, and that median exceeds
  ``latent_threshold`` itself. A collapsed latent (a ReLU
  layer that maps many different inputs to one direction) gives distance ~0 to
  everything, so its pairs are not trusted; they are reported only when the inputs
  confirm them.

Pixel search without holding all inputs or comparing all pairs: inputs are
fetched in chunks and projected onto their top ``n_components`` principal axes.
An orthogonal projection never increases distances, so every pair within the
threshold in pixel space is within it in projection (even after adding the
squared difference of the two residual norms, which also bounds the dropped
part): each sample's ``n_candidates`` nearest projected neighbours passing that
bound are the candidates, and their exact pixel distances decide. Identical inputs are also
grouped by hashing, so a large group of copies is found in full.

Pairs inside one subset give one ``duplicate`` insight per subset; pairs across
subsets give one ``leakage`` insight per subset pair (the training subset first).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from samplescope.analysis.insights.aligned import AlignedSketch, aligned_images, is_image_shape
from samplescope.analysis.insights.base import (
    Insight,
    InsightContext,
    InsightFinder,
    error_severity,
    pct,
    seed_for,
)
from samplescope.analysis.insights.explain import action, population_test
from samplescope.analysis.sketch import PixelFeatures, PixelSketch
from samplescope.errors import SamplescopeError

__all__ = ["Duplicates"]

logger = logging.getLogger(__name__)

_SPREAD_BLOCK = 262_144  # rows whose graph neighbours are read at a time
_ROW_BLOCK = 262_144  # rows of candidate pairs tested at a time (float64 (block, k) temporaries)
_PAIR_BLOCK = 65_536  # pairs whose latent cosine is computed at a time

_PAIR_COLUMNS = ["row_a", "row_b", "pixel_distance", "latent_distance"]


class Duplicates(InsightFinder):
    """Find near-duplicate pairs in pixel and latent space.

    Attributes (after :meth:`find`)
    -------------------------------
    pairs_: DataFrame of every pair found: row_a, row_b (row positions), sample_id_a,
        sample_id_b, subset_a, subset_b, pixel_distance (NaN without inputs),
        latent_distance, space ("pixel", "latent" or "pixel+latent").
    pixel_threshold_: the absolute pixel distance used (NaN without inputs).
    duplicate_of_: (N,) sample id of each row's nearest duplicate in its own subset (-1: none).
    leaks_from_: (N,) sample id of each held-out row's nearest duplicate in training (-1: none).
    """

    kinds = ("duplicate", "leakage")
    column_prefix = "duplicate"

    def __init__(
        self,
        pixel_threshold: float = 0.1,
        vector_threshold: float = 1e-3,
        latent_threshold: float = 1e-4,
        latent_spread: float = 0.01,
        aligned_threshold: float = 0.16,
        aligned_ratio: float = 0.5,
        aligned_k: int = 4,
        aligned_group: int = 13,
        aligned_exact: float = 0.01,
        aligned_sigma: float = 1.0,
        n_candidates: int = 4,
        n_components: int = 32,
        pca_samples: int = 5000,
        chunk_size: int = 8192,
        max_pairs: int = 1000,
        max_sample_ids: int = 200,
        random_state: int | None = None,
    ) -> None:
        self.pixel_threshold = pixel_threshold
        self.vector_threshold = vector_threshold
        self.latent_threshold = latent_threshold
        self.latent_spread = latent_spread
        self.aligned_threshold = aligned_threshold
        self.aligned_ratio = aligned_ratio
        self.aligned_k = aligned_k
        self.aligned_group = aligned_group
        self.aligned_exact = aligned_exact
        self.aligned_sigma = aligned_sigma
        self.n_candidates = n_candidates
        self.n_components = n_components
        self.pca_samples = pca_samples
        self.chunk_size = chunk_size
        self.max_pairs = max_pairs
        self.max_sample_ids = max_sample_ids
        self.random_state = random_state

    # ------------------------------------------------------------------ verb

    def find(self, ctx: InsightContext) -> list[Insight]:
        seed = seed_for(self.random_state, ctx)
        self.pixel_threshold_ = math.nan
        self.pixel_scale_ = math.nan
        self.aligned_scale_ = math.nan
        self._aligned_ref: np.ndarray | None = None
        self._digest: np.ndarray | None = None
        candidates = [self._latent_candidates(ctx, seed)]
        if ctx.inputs is not None or ctx.pixel_features is not None:
            candidates.append(self._pixel_candidates(ctx, seed))
        if ctx.inputs is not None and is_image_shape(ctx.input_shape):
            candidates.append(self._aligned_candidates(ctx, seed))
        pairs = np.unique(np.concatenate(candidates), axis=0)
        table = self._measure(ctx, pairs)
        self._digest = None  # only _measure reads it
        self.pairs_ = table
        self._per_row(ctx, table)
        return self._insights(ctx, table)

    # ------------------------------------------------------------------ inputs

    def _fetch(self, ctx: InsightContext, rows: np.ndarray) -> np.ndarray:
        """(B, P) float32 inputs of ``rows`` (sorted), fetched ``chunk_size`` at a time."""
        assert ctx.inputs is not None
        parts = []
        for start in range(0, len(rows), self.chunk_size):
            chunk = rows[start : start + self.chunk_size]
            x = np.asarray(ctx.inputs(chunk))
            if x.ndim < 2 or x.shape[0] != len(chunk):
                raise SamplescopeError(
                    f"InsightContext.inputs returned shape {x.shape} for {len(chunk)} rows; "
                    "it must "
                    "return one flattened input per row, (B, P)."
                )
            parts.append(np.ascontiguousarray(x.reshape(len(chunk), -1), dtype=np.float32))
        return np.concatenate(parts) if parts else np.empty((0, 0), np.float32)

    def _pixel_features(self, ctx: InsightContext, seed: int) -> PixelFeatures:
        """The context's sketch (made in the inference pass), else one made from ``ctx.inputs``."""
        if ctx.pixel_features is not None:
            return ctx.pixel_features
        n = ctx.n_rows
        rng = np.random.default_rng(seed)
        fit_rows = np.sort(rng.choice(n, min(n, self.pca_samples), replace=False))
        sketch = PixelSketch(self.n_components, random_state=seed).fit(self._fetch(ctx, fit_rows))
        features = sketch.allocate(n)
        for start in range(0, n, self.chunk_size):
            chunk = np.arange(start, min(n, start + self.chunk_size))
            sketch.transform_into(features, start, self._fetch(ctx, chunk))
        return features

    def _pixel_candidates(self, ctx: InsightContext, seed: int) -> np.ndarray:
        """(M, 2) row pairs that may be within the pixel threshold (sets the threshold too)."""
        features = self._pixel_features(ctx, seed)
        n = len(features)
        self._digest = features.digest
        self.pixel_scale_ = features.scale
        self.pixel_threshold_ = tau = self._relative_threshold(ctx) * features.scale
        pairs = [_same_value_pairs(features.digest)]
        if n >= 2:
            from samplescope.analysis.neighbors import NeighborIndex

            k = min(self.n_candidates, n - 1)
            # tuned to pairs within tau, not to ordinary 10-NN queries: few lists hold them
            index = NeighborIndex("l2", graph_k=k, random_state=seed, recall_radius=tau).fit(
                features.z, spill_to=ctx.scratch_folder("pixel_index"))
            pos, dist = index.graph_rows_, index.graph_dist_  # (N, k): no int64 copy
            del index  # its lists (a copy of the sketch) are not needed any more
            # ||x - y||^2 >= ||P(x - y)||^2 + (||Rx|| - ||Ry||)^2: a tighter lower bound
            residual = features.residual
            for start in range(0, n, _ROW_BLOCK):  # bounded (block, k) float64 temporaries
                p, d = pos[start : start + _ROW_BLOCK], dist[start : start + _ROW_BLOCK]
                gap = residual[start : start + len(p), None] - residual[np.maximum(p, 0)]
                close = (d.astype(np.float64) ** 2 + gap**2 <= tau**2) & (p >= 0)
                i, j = np.nonzero(close)
                pairs.append(np.stack([i + start, p[i, j]], axis=1).astype(np.int64))
        return _ordered(np.concatenate(pairs))

    def _relative_threshold(self, ctx: InsightContext) -> float:
        """``pixel_threshold`` for pictures; ``vector_threshold`` for a 1-D input (rows, sequences)."""
        shape = ctx.input_shape
        return self.vector_threshold if shape is not None and len(tuple(shape)) == 1 else self.pixel_threshold

    # ------------------------------------------------------------------ aligned

    def _aligned(self, ctx: InsightContext, x: np.ndarray) -> np.ndarray:
        """(B, P) inputs -> their aligned, blurred images (B, P) float32."""
        return aligned_images(x, tuple(ctx.input_shape), self.aligned_sigma)  # type: ignore[arg-type]

    def _aligned_features(self, ctx: InsightContext, seed: int) -> PixelFeatures:
        """The context's aligned sketch (made in the inference pass) when it was made as this finder
        would make it; else every input fetched through ``ctx.inputs``, aligned and sketched here."""
        n = ctx.n_rows
        f = ctx.aligned_features
        made = None if f is None else (f.sigma, f.n_components, f.random_state, f.fit_size)
        if made == (self.aligned_sigma, 2 * self.n_components, seed, min(n, self.pca_samples)):
            return f
        if f is not None:
            logger.info("duplicates: the pass's aligned sketch %s is not this finder's; aligning here", made)
        rng = np.random.default_rng(seed)
        fit_rows = np.sort(rng.choice(n, min(n, self.pca_samples), replace=False))
        sketch = AlignedSketch(tuple(ctx.input_shape), self.aligned_sigma,  # type: ignore[arg-type]
                               2 * self.n_components, random_state=seed).fit(self._fetch(ctx, fit_rows))
        features = sketch.allocate(n)
        for start in range(0, n, self.chunk_size):
            chunk = np.arange(start, min(n, start + self.chunk_size))
            sketch.transform_into(features, start, self._fetch(ctx, chunk))
        return features

    def _aligned_candidates(self, ctx: InsightContext, seed: int) -> np.ndarray:
        """(M, 2) row pairs that may be aligned duplicates; sets each row's reference distance.

        Every input is aligned once and sketched (in the inference pass, or here in chunks);
        each row's ``aligned_k - 1 + aligned_group`` nearest sketches give both its candidates
        and (as estimates, never above the true distances) its reference distance: the
        ``(c + aligned_k - 1)``-th of them, ``c`` the row's copies among them (the module's
        docstring).
        """
        n = ctx.n_rows
        if n < 2:
            return np.empty((0, 2), np.int64)
        features = self._aligned_features(ctx, seed)
        self.aligned_scale_ = features.scale
        tau = self.aligned_threshold * features.scale
        exact = self.aligned_exact * features.scale
        from samplescope.analysis.neighbors import NeighborIndex

        k = min(max(self.aligned_k - 1 + max(1, self.aligned_group), self.n_candidates), n - 1)
        index = NeighborIndex("l2", graph_k=k, random_state=seed, recall_radius=tau).fit(
            features.z, spill_to=ctx.scratch_folder("aligned_index"))
        pos, dist = index.graph_rows_, index.graph_dist_
        del index
        self._aligned_ref = np.empty(n, np.float64)
        pairs = [_same_value_pairs(features.digest)]
        for start in range(0, n, _ROW_BLOCK):  # bounded (block, k) float64 temporaries
            p, d = pos[start : start + _ROW_BLOCK], dist[start : start + _ROW_BLOCK]
            gap = features.residual[start : start + len(p), None] - features.residual[np.maximum(p, 0)]
            estimate = np.sqrt(d.astype(np.float64) ** 2 + gap**2)  # <= the true distance
            estimate[p < 0] = np.inf
            by = np.argsort(estimate, axis=1, kind="stable")  # the bound's order, not the sketch's
            estimate = np.take_along_axis(estimate, by, 1)
            p = np.take_along_axis(np.asarray(p), by, 1)
            copies, ref = _copies_and_reference(estimate, min(self.aligned_k, k), self.aligned_ratio)
            self._aligned_ref[start : start + len(p)] = ref
            # candidates: the nearest n_candidates of a row's copies (or of those the same picture
            # after alignment), as many as before groups were counted: each pair is fetched and
            # aligned again to be measured, and a row needs only its nearest copy
            col = np.arange(k)[None, :]
            close = (estimate <= tau) & (p >= 0) & (col < self.n_candidates)
            close &= (col < copies[:, None]) | (estimate <= exact)
            i, j = np.nonzero(close)
            pairs.append(np.stack([i + start, p[i, j]], axis=1).astype(np.int64))
        return _ordered(np.concatenate(pairs))

    # ------------------------------------------------------------------ latent

    def _latent_candidates(self, ctx: InsightContext, seed: int) -> np.ndarray:
        """Pairs within the latent threshold among each row's nearest rows of the shared graph.

        The graph spans every subset, so one pass finds duplicates inside a subset and
        leaks across subsets alike.
        """
        if ctx.n_rows < 2:
            return np.empty((0, 2), np.int64)
        dist, nbr = ctx.latent_neighbors(max(1, self.n_candidates))
        close = (dist <= self.latent_threshold) & (nbr >= 0)
        # candidates only: _measure keeps a latent pair when the latent has spread there
        # or the inputs confirm it
        i = np.repeat(np.arange(ctx.n_rows), dist.shape[1])[close.ravel()]
        return _ordered(np.stack([i, nbr.ravel()[close.ravel()]], axis=1))

    # ------------------------------------------------------------------ measure

    def _measure(self, ctx: InsightContext, pairs: np.ndarray) -> pd.DataFrame:
        """Exact pixel and latent distances of candidate pairs; keep those under a threshold.

        Memory is bounded by ``chunk_size`` pairs, not by their number: a pair of inputs that
        are byte for byte the same (the same digest, each checked against its digest group's
        first input) has pixel and aligned distance 0 without fetching the pair; the others
        are fetched, aligned and measured a chunk of pairs at a time. (All at once, a million
        MNIST images repeated 14 times made 3M pairs, (3M, 784) float32 differences, and ran
        the 24 GiB machine out of memory.)
        """
        same = np.zeros(len(pairs), bool)
        group = self._copy_groups(ctx) if ctx.inputs is not None else None
        if group is not None:
            # copies are listed one way whatever the graph's ties picked (they differ with the
            # chunking and the BLAS): each copy against its group's first row in every subset
            copy = (group[pairs[:, 0]] >= 0) & (group[pairs[:, 0]] == group[pairs[:, 1]])
            canonical = _copy_pairs(group, ctx.subsets)
            pairs = np.concatenate([pairs[~copy], canonical])
            same = np.r_[np.zeros(int((~copy).sum()), bool), np.ones(len(canonical), bool)]
        a, b = pairs[:, 0], pairs[:, 1]
        latent = np.empty(len(pairs), np.float32)  # the dtype of the cosine of float32 unit rows
        for start in range(0, len(pairs), _PAIR_BLOCK):  # (block, D) unit rows, not (M, D)
            at = slice(start, start + _PAIR_BLOCK)
            cos = np.einsum("ij,ij->i", ctx.unit_rows(a[at]), ctx.unit_rows(b[at]))
            latent[at] = np.maximum(0.0, 1.0 - cos)
        pixel = np.full(len(pairs), np.nan)
        aligned = np.full(len(pairs), np.nan)
        in_aligned = np.zeros(len(pairs), bool)
        if ctx.inputs is not None and len(pairs):
            pixel[same] = 0.0
            with_aligned = self._aligned_ref is not None
            if with_aligned:
                aligned[same] = 0.0
            todo = np.flatnonzero(~same)
            todo = todo[_by_component(pairs[todo], ctx.n_rows)]  # a group's pairs in one chunk
            for start in range(0, len(todo), self.chunk_size):
                at = todo[start : start + self.chunk_size]
                rows = np.unique(pairs[at])
                x = self._fetch(ctx, rows)
                where = np.searchsorted(rows, pairs[at])
                pixel[at] = _row_distances(x, where)
                if with_aligned:
                    aligned[at] = _row_distances(self._aligned(ctx, x), where)
            if with_aligned:
                ref = np.maximum(self._aligned_ref[a], self._aligned_ref[b])  # type: ignore[index]
                in_aligned = (aligned <= self.aligned_threshold * self.aligned_scale_) & (
                    (aligned <= self.aligned_ratio * ref + 1e-12)
                    | (aligned <= self.aligned_exact * self.aligned_scale_)
                )
        # a latent pair is trusted only where the latent has spread: its distance is a
        # small share of the sample's usual neighbour distance (a collapsed latent has none)
        spread = self._latent_spread(ctx)
        trusted = (
            np.ones(len(pairs), bool)
            if np.isinf(self.latent_spread)  # latent_spread=inf: trust every latent pair
            else (latent <= self.latent_spread * np.minimum(spread[a], spread[b]))
            & (np.minimum(spread[a], spread[b]) > self.latent_threshold)  # a collapsed latent has none
        )
        in_latent = (latent <= self.latent_threshold) & trusted
        in_pixels = pixel <= self.pixel_threshold_
        keep = in_latent | in_pixels | in_aligned
        a, b, pixel, latent, aligned = a[keep], b[keep], pixel[keep], latent[keep], aligned[keep]
        in_pixels, in_latent, in_aligned = in_pixels[keep], in_latent[keep], in_aligned[keep]
        # one of 8 shared strings per pair, not a string built per pair
        code = in_pixels * 1 + (in_aligned & ~in_pixels) * 2 + in_latent * 4
        space = _SPACE_NAMES[code]
        table = pd.DataFrame(
            {
                "row_a": a,
                "row_b": b,
                "sample_id_a": ctx.sample_ids[a],
                "sample_id_b": ctx.sample_ids[b],
                "subset_a": ctx.subsets[a],
                "subset_b": ctx.subsets[b],
                "pixel_distance": pixel,
                "aligned_distance": aligned,
                "latent_distance": latent,
                "space": space,
            }
        )
        distance = np.where(np.isnan(pixel), latent, np.where(in_pixels, pixel, aligned))
        order = np.lexsort((table["sample_id_b"], table["sample_id_a"], distance))
        return table.iloc[order].reset_index(drop=True)

    def _copy_groups(self, ctx: InsightContext) -> np.ndarray | None:
        """(N,) int64: each row's group of byte-equal inputs (its first row), -1 for none.

        A group is the rows sharing a pixel-sketch digest that each equal the group's first
        row (checked exactly, ``chunk_size`` rows at a time), so a hash collision is never
        taken for a copy. None without a digest.
        """
        digest = self._digest
        if digest is None:
            return None
        first = _group_first(digest)
        rows = np.flatnonzero(first != np.arange(len(digest)))  # every repeat of a digest
        equal = np.zeros(len(rows), bool)
        for start in range(0, len(rows), self.chunk_size):
            chunk = rows[start : start + self.chunk_size]
            both = np.unique(np.concatenate([chunk, first[chunk]]))
            x = self._fetch(ctx, both)
            mine = x[np.searchsorted(both, chunk)]
            theirs = x[np.searchsorted(both, first[chunk])]
            equal[start : start + len(chunk)] = (mine == theirs).all(axis=1)
        group = np.full(len(digest), -1, np.int64)
        copies = rows[equal]
        group[copies] = first[copies]
        group[first[copies]] = first[copies]
        return group

    def _latent_spread(self, ctx: InsightContext) -> np.ndarray:
        """(N,) median cosine distance to each row's 16 graph neighbours."""
        n = ctx.n_rows
        if n < 2:
            return np.zeros(n)
        out = np.zeros(n, np.float32)
        for start in range(0, n, _SPREAD_BLOCK):  # the graph read in blocks: no (N, 16) temporaries
            nbr, dist = ctx.neighbor_index.kneighbors(np.arange(start, min(n, start + _SPREAD_BLOCK)), k=min(16, n - 1))
            dist = np.where(nbr >= 0, dist, np.nan)
            with np.errstate(all="ignore"):
                out[start : start + len(dist)] = np.nan_to_num(np.nanmedian(dist, axis=1), nan=0.0)
        return out

    def _per_row(self, ctx: InsightContext, table: pd.DataFrame) -> None:
        """``duplicate_of_`` and ``leaks_from_``: the per-sample columns a population test reads."""
        self.duplicate_of_ = np.full(ctx.n_rows, -1, np.int64)
        self.leaks_from_ = np.full(ctx.n_rows, -1, np.int64)
        train = ctx.train_subset
        for ra, rb, sa, sb, ia, ib in table[
            ["row_a", "row_b", "subset_a", "subset_b", "sample_id_a", "sample_id_b"]
        ].itertuples(index=False):  # nearest pairs first: keep each row's first
            if sa == sb:
                for r, other in ((ra, ib), (rb, ia)):
                    if self.duplicate_of_[r] < 0:
                        self.duplicate_of_[r] = other
            elif sa == train or sb == train:
                held, source = (rb, ia) if sa == train else (ra, ib)
                if self.leaks_from_[held] < 0:
                    self.leaks_from_[held] = source

    # ------------------------------------------------------------------ insights

    def _insights(self, ctx: InsightContext, table: pd.DataFrame) -> list[Insight]:
        if table.empty:
            return []
        out = []
        same = table["subset_a"] == table["subset_b"]
        for subset, group in table[same].groupby("subset_a", sort=True):
            out.append(self._duplicate_insight(ctx, str(subset), group))
        cross = table[~same]
        if len(cross):
            train = ctx.train_subset
            # orient each cross pair: training subset first, else alphabetical
            swap = (cross["subset_b"] == train) | (
                (cross["subset_a"] != train) & (cross["subset_a"] > cross["subset_b"])
            )
            cross, swap = cross.copy(), swap.to_numpy()
            for left, right in (
                ("row_a", "row_b"),
                ("sample_id_a", "sample_id_b"),
                ("subset_a", "subset_b"),
            ):
                lv, rv = cross[left].to_numpy(), cross[right].to_numpy()
                cross[left], cross[right] = np.where(swap, rv, lv), np.where(swap, lv, rv)
            for (sa, sb), group in cross.groupby(["subset_a", "subset_b"], sort=True):
                out.append(self._leakage_insight(ctx, str(sa), str(sb), group))
        return out

    def _pair_details(self, ctx: InsightContext, group: pd.DataFrame) -> dict[str, Any]:
        has_pixels = ctx.inputs is not None
        dist = group["pixel_distance"] if has_pixels else group["latent_distance"]
        shown = group.iloc[: self.max_pairs]
        la, lb = ctx.labels[group["row_a"]], ctx.labels[group["row_b"]]
        conflicts = int(((la >= 0) & (lb >= 0) & (la != lb)).sum())
        return {
            "n_pairs": len(group),
            "pairs": [
                [int(a), int(b), float(d)]
                for a, b, d in zip(
                    shown["sample_id_a"],
                    shown["sample_id_b"],
                    dist.iloc[: self.max_pairs],
                    strict=True,
                )
            ],
            "distance_metric": "pixel_l2" if has_pixels else "latent_cosine",
            "latent_distances": shown["latent_distance"].tolist(),
            "spaces": shown["space"].tolist(),
            "truncated": len(group) > self.max_pairs,
            "n_identical_pixels": int((group["pixel_distance"] == 0).sum()) if has_pixels else None,
            "n_latent_only": int((group["space"] == "latent").sum()),
            "n_aligned_only": int((group["space"].str.startswith("aligned")).sum()),
            "aligned_distances": shown["aligned_distance"].tolist(),
            "label_conflicts": conflicts,
            "pixel_threshold": self.pixel_threshold_ if has_pixels else None,
            "input_is_vector": self._relative_threshold(ctx) == self.vector_threshold != self.pixel_threshold,
            "pixel_scale": self.pixel_scale_ if has_pixels else None,
            "latent_threshold": self.latent_threshold,
            "aligned_threshold": (
                self.aligned_threshold * self.aligned_scale_ if self._aligned_ref is not None else None
            ),
            "aligned_ratio": self.aligned_ratio,
        }

    def _how(self, details: dict[str, Any]) -> str:
        parts = []
        if details["n_identical_pixels"]:
            parts.append(f"{details['n_identical_pixels']:,} identical in pixels")
        n_near = (
            details["n_pairs"]
            - (details["n_identical_pixels"] or 0)
            - details["n_latent_only"]
            - details["n_aligned_only"]
        )
        if n_near:
            space = "input" if details.get("input_is_vector") else "pixel"
            parts.append(f"{n_near:,} within {space} distance {details['pixel_threshold']:.3g}")
        if details["n_aligned_only"]:
            parts.append(
                f"{details['n_aligned_only']:,} only once aligned (shifted, rescaled or "
                "re-encoded copies)"
            )
        if details["n_latent_only"]:
            parts.append(
                f"{details['n_latent_only']:,} only in latent space "
                f"(cosine distance <= {self.latent_threshold:g}, far below their neighbours')"
            )
        if details["label_conflicts"]:
            parts.append(f"{details['label_conflicts']:,} with different labels")
        return "; ".join(parts)

    def _duplicate_insight(self, ctx: InsightContext, subset: str, group: pd.DataFrame) -> Insight:
        details = self._pair_details(ctx, group)
        involved = np.unique(np.concatenate([group["row_a"], group["row_b"]]))
        size = int((ctx.subsets == subset).sum())
        share = len(involved) / max(size, 1)
        details.update(subset=subset, n_samples=len(involved), subset_size=size)
        first = group.iloc[0]
        text = (
            f"{subset} has {len(group):,} near-duplicate pairs covering {len(involved):,} of its "
            f"{size:,} samples ({pct(share)}): {self._how(details)}; e.g. #{first.sample_id_a} "
            f"and #{first.sample_id_b}."
        )
        ids = _interleave(group["sample_id_a"], group["sample_id_b"], self.max_sample_ids)
        title = f"{len(group):,} duplicate pairs in {subset}"
        # the common scale: wrong labels among conflicting copies, and errors counted twice
        both_wrong = int((ctx.errors[group["row_a"]] & ctx.errors[group["row_b"]]).sum())
        accounted = details["label_conflicts"] + both_wrong
        details["accounted_errors"] = accounted
        details["action"] = action(
            "remove_duplicates",
            f"Remove the redundant copies in {subset} (keep one of each of the {len(group):,} pairs)"
            + (f"; fix the label of one side of the {details['label_conflicts']:,} pairs whose labels differ"
               if details["label_conflicts"] else "")
            + ".",
            population_test(f"duplicates in {subset}", "count", "<=", len(involved),
                            subset=subset, where={"duplicate_of": {"min": 0}}),
        )
        severity = error_severity(accounted, int(ctx.errors.sum()))
        return Insight("duplicate", severity, ids, text, title, details)

    def _leakage_insight(
        self, ctx: InsightContext, sa: str, sb: str, group: pd.DataFrame
    ) -> Insight:
        details = self._pair_details(ctx, group)
        leaked = np.unique(group["row_b"])
        size = int((ctx.subsets == sb).sum())
        share = len(leaked) / max(size, 1)
        details.update(subsets=[sa, sb], n_leaked=len(leaked), subset_size=size)
        first = group.iloc[0]
        text = (
            f"{len(leaked):,} {sb} samples ({pct(share)}) have a near-duplicate in {sa} "
            f"({len(group):,} pairs: {self._how(details)}), so {sb} scores overstate how well "
            f"the model generalises; e.g. #{first.sample_id_b} ({sb}) and "
            f"#{first.sample_id_a} ({sa})."
        )
        ids = _interleave(group["sample_id_b"], group["sample_id_a"], self.max_sample_ids)
        title = f"{len(leaked):,} {sb} samples leak from {sa}"
        # the common scale: the errors the leaked samples hide (they would fail at the rate
        # of the subset's other samples) and the wrong labels among conflicting copies
        in_sb = (ctx.subsets == sb) & ctx.labelled
        is_leaked = np.zeros(ctx.n_rows, bool)
        is_leaked[leaked] = True
        rest = in_sb & ~is_leaked
        r_rest = float(ctx.errors[rest].mean()) if rest.any() else 0.0
        r_leak = float(ctx.errors[in_sb & is_leaked].mean()) if (in_sb & is_leaked).any() else 0.0
        hidden = int((in_sb & is_leaked).sum()) * max(0.0, r_rest - r_leak)
        accounted = hidden + details["label_conflicts"]
        details.update(hidden_errors=hidden, accounted_errors=accounted,
                       leaked_error_rate=r_leak, rest_error_rate=r_rest)
        test = population_test(f"{sb} samples with a copy in {sa}", "count", "<=", len(leaked),
                               subset=sb, where={"leaks_from": {"min": 0}}) if sa == ctx.train_subset else None
        details["action"] = action(
            "remove_duplicates",
            f"Remove these {len(leaked):,} {sb} samples (or their {sa} copies) and measure again: "
            f"{sb} counts them as unseen.",
            test,
        )
        severity = error_severity(accounted, int(ctx.errors.sum()))
        return Insight("leakage", severity, ids, text, title, details)


# --------------------------------------------------------------------------- helpers


_SPACE_NAMES = np.array(
    ["+".join(n for n, bit in zip(("pixel", "aligned", "latent"), (1, 2, 4), strict=True) if code & bit)
     for code in range(8)],
    dtype=object,
)


def _row_distances(x: np.ndarray, where: np.ndarray) -> np.ndarray:
    """(M,) float64 Euclidean distance between rows ``where[:, 0]`` and ``where[:, 1]`` of ``x``."""
    diff = x[where[:, 0]] - x[where[:, 1]]
    return np.sqrt(np.einsum("ij,ij->i", diff, diff, dtype=np.float64))


def _by_component(pairs: np.ndarray, n: int) -> np.ndarray:
    """An order of ``pairs`` (M, 2) that keeps each connected group of rows together.

    Measuring fetches (and aligns) every row of a chunk of pairs once: pairs in row order put
    a row's partners in other chunks, so each row of a group of copies is fetched again with
    every pair. Grouped, a chunk's pairs share their rows (MNIST repeated to 1M with shifts:
    a simulation of 4 candidate copies a row: rows fetched per pair 1.29 -> 0.34)."""
    if len(pairs) == 0:
        return np.arange(0)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b = pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32)
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n)).tocsr()
    _, label = connected_components(graph, directed=False)
    return np.argsort(label[a], kind="stable")


def _copies_and_reference(estimate: np.ndarray, k0: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's copies among its sorted neighbour distances ``estimate`` (B, K) (inf: none),
    and its reference distance.

    ``c`` is the largest count (at most ``K - k0 + 1``) whose ``c``-th distance is within
    ``ratio`` of the ``(c + k0 - 1)``-th: the neighbours before the last such jump are copies
    (0 when there is none). The reference is the ``(max(c, 1) + k0 - 1)``-th distance: with
    one copy or none, the ``k0``-th, as before groups were counted.
    """
    b, k = estimate.shape
    span = k - k0 + 1
    near, far = estimate[:, :span], estimate[:, k0 - 1 : k0 - 1 + span]
    jump = np.isfinite(near) & (near <= ratio * far + 1e-12)  # column c - 1: the test for c
    copies = np.where(jump.any(axis=1), span - np.argmax(jump[:, ::-1], axis=1), 0)
    ref = estimate[np.arange(b), np.maximum(copies, 1) + k0 - 2]
    return copies, ref


def _group_first(values: np.ndarray) -> np.ndarray:
    """(N,) int64: for each row, the first row holding the same value."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    first = np.empty(len(values), np.int64)
    first[order] = order[starts][np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))]
    return first


def _same_value_pairs(values: np.ndarray) -> np.ndarray:
    """(M, 2) pairs (first row of a group, each other row) for every repeated value."""
    first = _group_first(values)
    rows = np.flatnonzero(first != np.arange(len(values)))
    return np.stack([first[rows], rows], axis=1)


def _copy_pairs(group: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """(M, 2) ordered pairs of copies: each row of a group against the group's first row in
    every subset the group reaches (a spanning star per subset, and every cross-subset copy
    paired with the other subset's first: leaks are each found once)."""
    rows = np.flatnonzero(group >= 0)
    if not len(rows):
        return np.empty((0, 2), np.int64)
    g = group[rows]
    _, s = np.unique(np.asarray(subsets)[rows], return_inverse=True)
    order = np.lexsort((rows, s, g))  # by group, then subset, then row
    g_o, s_o, r_o = g[order], s[order], rows[order]
    starts = np.flatnonzero(np.r_[True, (g_o[1:] != g_o[:-1]) | (s_o[1:] != s_o[:-1])])
    firsts, firsts_group = r_o[starts], g_o[starts]  # each (group, subset)'s first row, by group
    lo = np.searchsorted(firsts_group, g, "left")
    count = np.searchsorted(firsts_group, g, "right") - lo
    at = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + np.repeat(lo, count)
    pairs = _ordered(np.stack([firsts[at], np.repeat(rows, count)], axis=1))
    return np.unique(pairs, axis=0)


def _ordered(pairs: np.ndarray) -> np.ndarray:
    """Pairs as (smaller row, larger row), self-pairs dropped."""
    pairs = np.sort(np.asarray(pairs, np.int64).reshape(-1, 2), axis=1)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def _interleave(first: Iterable[int], second: Iterable[int], limit: int) -> list[int]:
    """Unique ids taken pair by pair (first member, then second), at most ``limit``."""
    seen: dict[int, None] = {}
    for a, b in zip(first, second, strict=True):
        seen.setdefault(int(a))
        seen.setdefault(int(b))
        if len(seen) >= limit:
            break
    return list(seen)[:limit]
