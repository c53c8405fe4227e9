"""What every figure reads: the run, its tables, and the facts the text quotes.

A :class:`ReportContext` loads the run's samples once (above ``map_queries.FULL_MAX``
samples, only the map overview's density-aware draw of them: counts, top-loss samples and
rows by id still come from the whole table, in DuckDB) and derives, from the run's own
data, what several figures share: the evaluation subset's metrics,
the pair of classes the model confuses most, the highest-loss samples and the
misclassified sample the heatmaps and neighbours are shown for. Figures are
drawn with :class:`matplotlib.figure.Figure` (the Agg canvas, no pyplot state),
so the report works headless and never opens a window.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from samplescope.run import Run

log = logging.getLogger(__name__)

DPI = 110


@dataclasses.dataclass
class Section:
    """One part of the report: a heading, plain-text paragraphs and PNG file names."""

    key: str
    title: str
    paragraphs: list[str]
    images: list[str] = dataclasses.field(default_factory=list)
    note: str | None = None  # small print under the images


@dataclasses.dataclass(frozen=True)
class ConfusedPair:
    """The two classes mixed up most often in the evaluation subset (a < b)."""

    a: int
    b: int
    a_as_b: int  # samples of class a predicted as b
    b_as_a: int

    @property
    def total(self) -> int:
        return self.a_as_b + self.b_as_a


class ReportContext:
    """The run and the facts shared by the figures, each computed once on first use."""

    def __init__(self, run: Run, out: Path, dpi: int = DPI) -> None:
        run.require_analysis()
        self.run = run
        self.out = Path(out)
        self.dpi = dpi
        self.subset = "validation" if "validation" in run.subsets else run.subsets[-1]
        self.warnings: list[str] = []

    # -- tables ----------------------------------------------------------------

    @functools.cached_property
    def n(self) -> int:
        """Samples in the run (every subset)."""
        return len(self.run)

    @functools.cached_property
    def drawn(self) -> np.ndarray | None:
        """None when the report's tables hold every sample; above ``map_queries.FULL_MAX`` the
        sorted ids of the map overview (saved by ``analyze``, else made here), which the maps
        and the sample-level plots draw, as the web page does."""
        from samplescope.store import map_queries

        if self.n <= map_queries.FULL_MAX:
            return None
        points, group = map_queries.OVERVIEW_POINTS, self.task.map_group_sql
        made = (self.run.info.get("analysis") or {}).get("map_overview")
        return map_queries.run_overview(self.run.path, made, self.run.db, self.n, points, group)

    @functools.cached_property
    def samples(self) -> pd.DataFrame:
        """Every sample's row, or above ``FULL_MAX`` the drawn ones' (:attr:`drawn`)."""
        if self.drawn is None:
            return self.run.samples()
        return self.run.db.rows(self.drawn)

    @functools.cached_property
    def columns(self) -> dict[str, str]:
        """The samples table's columns and their types."""
        return self.run.db.columns()

    def rows(self, sample_ids: Any) -> pd.DataFrame:
        """The rows of these samples, in that order, indexed by ``sample_id`` (ids not in the
        run left out), from the whole table whatever :attr:`drawn` holds."""
        ids = [int(i) for i in sample_ids if 0 <= int(i) < self.n]
        return self.run.db.rows(np.asarray(ids, np.int64)).set_index("sample_id")

    @functools.cached_property
    def task(self) -> Any:
        """The run's task (samplescope/tasks): what label, loss and error mean."""
        return self.run.task

    @functools.cached_property
    def evaluation(self) -> pd.DataFrame:
        """Labelled samples of the evaluation subset (validation), of :attr:`samples`."""
        df = self.samples
        labelled = self.task.labelled(self.task.labels_from_table(df, self.classes))
        return df[(df["subset"] == self.subset).to_numpy() & labelled]

    @functools.cached_property
    def metrics(self) -> dict[str, Any]:
        return self.run.metrics(self.subset)

    @property
    def classes(self) -> list[str]:
        return self.run.classes

    @property
    def n_classes(self) -> int:
        return len(self.run.classes)

    def class_name(self, k: int) -> str:
        k = int(k)
        return self.classes[k] if 0 <= k < self.n_classes else str(k)

    @functools.cached_property
    def centroid_columns(self) -> list[str] | None:
        """``dist_to_centroid_0 .. _{C-1}`` when the integration computes them, else None."""
        cols = [f"dist_to_centroid_{k}" for k in range(self.n_classes)]
        return cols if all(c in self.columns for c in cols) else None

    # -- facts the text quotes ----------------------------------------------------

    @functools.cached_property
    def confused_pair(self) -> ConfusedPair | None:
        """Argmax of the symmetric off-diagonal confusion ``C + C.T``; None without errors
        (or without one class per sample)."""
        if "confusion" not in self.metrics:
            return None
        cm = np.asarray(self.metrics["confusion"], dtype=np.int64)
        sym = cm + cm.T
        np.fill_diagonal(sym, 0)
        if sym.max() <= 0:
            return None
        i, j = np.unravel_index(int(np.argmax(np.triu(sym))), sym.shape)  # upper triangle: i < j
        a, b = int(i), int(j)
        return ConfusedPair(a, b, int(cm[a, b]), int(cm[b, a]))

    @functools.cached_property
    def error_count(self) -> int:
        """Errors among the labelled evaluation samples, over the whole table."""
        if self.drawn is None:
            return int((~self.evaluation["correct"].astype(bool)).sum())
        return self.run.db.count(where=f'{self.task.labelled_sql} AND NOT "correct"', subset=self.subset)

    def top_loss(self, n: int, errors_only: bool = False) -> pd.DataFrame:
        """The ``n`` highest-loss labelled evaluation samples (ties broken by sample id), over
        the whole table (in DuckDB when the tables hold only the drawn samples)."""
        if self.drawn is not None:
            where = f'{self.task.labelled_sql} AND NOT isnan("loss")' + (' AND NOT "correct"' if errors_only else "")
            return self.run.samples(subset=self.subset, where=where, order_by=["-loss", "sample_id"], limit=n)
        df = self.evaluation
        if errors_only:
            df = df[~df["correct"].astype(bool)]
        return df.sort_values(["loss", "sample_id"], ascending=[False, True]).head(n)

    @functools.cached_property
    def focus(self) -> pd.Series | None:
        """The sample the heatmaps and neighbours are shown for: the worst evaluation error.

        Falls back to the highest-loss evaluation sample when the model makes no error.
        """
        rows = self.top_loss(1, errors_only=True)
        if rows.empty:
            rows = self.top_loss(1)
        return None if rows.empty else rows.iloc[0]

    # -- images ---------------------------------------------------------------------

    @functools.cached_property
    def integration(self) -> Any:
        """The run's integration, loaded once; a changed source is noted in the report."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            integ = self.run.integration()
        for w in caught:
            log.warning("warning: %s", w.message)
            self.warnings.append(str(w.message))
        return integ

    def image(self, sample_id: int) -> np.ndarray:
        """The sample's picture, (H, W) or (H, W, 3) uint8."""
        self.integration  # noqa: B018 - load it (and record its warnings) once
        return self.run.image(int(sample_id))

    # -- saving -----------------------------------------------------------------------

    def save(self, fig: Any, name: str) -> str:
        """Save a matplotlib Figure as ``out/name`` and return the file name."""
        fig.savefig(self.out / name, dpi=self.dpi, facecolor="white")
        return name
