"""What every task answers: the interface the layers ask instead of assuming classes.

A task owns, for one kind of ground truth:

- **ground truth**: how an integration's values are encoded into one array
  (:meth:`Task.encode_labels`), checked (:meth:`Task.label_problem`, used by
  ``samplescope check``; :meth:`Task.check_labels`, used by ``train``) and stored in
  the samples table (:meth:`Task.label_columns`, read back by :meth:`Task.labels_from_table`);
- **training**: the model's output width, the default loss, the accuracy-like score the
  history records (``train_acc``/``val_acc``), and any scaling of the targets learned
  from the training set (:meth:`Task.fit`);
- **analysis**: the per-sample prediction columns, among them the contract every other
  layer reads: ``prediction``, ``loss`` (per-sample loss) and ``correct`` ("not an error
  under this task's definition");
- **metrics** over a subset, and the **views** the page and the report draw.

A task is a plain object: ``__init__`` stores parameters, what it learns (the target
scaling, the error threshold) ends in an underscore, and :meth:`Task.to_dict` is what
``run.json`` records under ``"task"`` (:func:`samplescope.tasks.task_from_info` reads it back).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd


class Task:
    """Base class; see :mod:`samplescope.tasks` for the built-in tasks."""

    #: the name an integration passes (``Integration(name, task="...")``) and run.json records
    name: ClassVar[str] = ""
    #: whether the integration must declare ``classes``
    needs_classes: ClassVar[bool] = True
    #: the views the page and the report show, in order (``confusion``, ``per_label``, ``regression``)
    views: ClassVar[tuple[str, ...]] = ()
    #: samples-table columns holding a class index (names are shown beside them)
    class_columns: ClassVar[tuple[str, ...]] = ()

    # -- identity ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """What run.json records: the name and the parameters (and learned state)."""
        return {"name": self.name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls()

    def __repr__(self) -> str:
        params = {k: v for k, v in self.to_dict().items() if k != "name"}
        inside = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({inside})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.name)

    # -- ground truth -----------------------------------------------------------

    def encode_labels(self, values: Any, n: int, classes: Sequence[str]) -> np.ndarray:
        """The ground-truth function's output for ``n`` samples as this task's array."""
        raise NotImplementedError

    def unlabeled(self, n: int, classes: Sequence[str]) -> np.ndarray:
        """The label array of ``n`` samples without ground truth."""
        raise NotImplementedError

    def label_problem(self, value: Any, classes: Sequence[str]) -> str | None:
        """What is wrong with one sample's ground-truth value (None: nothing), for ``check``."""
        raise NotImplementedError

    def check_labels(self, y: np.ndarray, classes: Sequence[str], integration: str, subset: str) -> None:
        """Refuse a whole subset's encoded labels that this task cannot use (``IntegrationError``).

        ``integration`` and ``subset`` name where the labels came from, for the message.
        """

    def labelled(self, y: np.ndarray) -> np.ndarray:
        """(N,) bool: which rows of a label array carry ground truth."""
        raise NotImplementedError

    def label_columns(self, y: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
        """Samples-table columns for a label array (always a ``label`` column)."""
        raise NotImplementedError

    def label_table_columns(self, classes: Sequence[str]) -> list[str]:
        """The table columns :meth:`labels_from_table` reads."""
        return ["label"]

    def labels_from_table(self, frame: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
        """The label array back from the samples table's columns."""
        raise NotImplementedError

    def label_summary(self, y: np.ndarray) -> list[Any]:
        """A short, exact description of a label array (a checkpoint must match it)."""
        raise NotImplementedError

    # -- training ---------------------------------------------------------------

    def output_width(self, classes: Sequence[str]) -> int:
        """Outputs of the model's last layer."""
        raise NotImplementedError

    def fit(self, y_train: np.ndarray) -> Task:
        """Learn what training needs from the training labels (e.g. target scaling); returns self."""
        return self

    def training_targets(self, y: np.ndarray) -> np.ndarray:
        """What the training loss compares the model's outputs with."""
        return y

    def loss(self, outputs: Any, targets: Any, label_smoothing: float = 0.0) -> Any:
        """The default training loss (a torch scalar, the mean over the batch)."""
        raise NotImplementedError

    def plain_loss(self, outputs: Any, targets: Any, reduction: str = "mean") -> Any:
        """The loss the history reports (no training-only terms such as label smoothing);
        ``reduction``: ``mean`` or ``sum`` over the batch."""
        raise NotImplementedError

    def score_sum(self, outputs: Any, targets: Any) -> Any:
        """Sum over the batch of the per-sample score whose mean the history calls ``*_acc``."""
        raise NotImplementedError

    #: what ``train_acc`` / ``val_acc`` hold for this task, in words
    score_name: ClassVar[str] = "accuracy"

    # -- analysis ---------------------------------------------------------------

    def prediction_columns(
        self,
        outputs: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str],
        reference: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Per-sample columns from the model's outputs (N, width) and the label array.

        ``reference``: (N,) bool, the rows a data-driven error rule is measured on
        (``analyze`` passes the validation subset). Always includes ``prediction``,
        ``loss`` and ``correct``.
        """
        raise NotImplementedError

    def error_rule(self) -> dict[str, Any]:
        """What counts as an error, stated (run.json's ``analysis.error``)."""
        raise NotImplementedError

    def insight_view(
        self, samples: pd.DataFrame, labels: np.ndarray, classes: Sequence[str]
    ) -> tuple[pd.DataFrame, list[str]]:
        """The table the insight finders read, and its class names.

        The finders group by class; a task without one class per sample gives them one
        group (``label`` 0 when labelled, -1 when not; ``prediction`` 0), no class
        probabilities, and keeps its own ``loss`` and ``correct``, so the finders look for
        where the task's errors concentrate.
        """
        labelled = self.labelled(labels)  # the label array, row for row with samples
        view = samples.drop(columns=[c for c in samples.columns if str(c).startswith(("prob_", "pred_", "label_"))])
        view["label"] = np.where(labelled, 0, -1).astype(np.int64)
        view["prediction"] = np.zeros(len(view), np.int64)
        return view, [self.group_name()]

    def group_name(self) -> str:
        """What the insight finders call the one group of a task without classes."""
        return "all samples"

    #: the map overview's groups (store/map_queries.overview_ids keeps some of every group in every
    #: map cell, so a rare one is never thinned away): SQL over the samples table, NULL for no label
    map_group_sql: ClassVar[str] = '"label"'
    #: SQL true for the rows that carry ground truth: :meth:`labelled` over the samples table
    labelled_sql: ClassVar[str] = '"label" IS NOT NULL'

    # -- metrics ----------------------------------------------------------------

    def metric_columns(self, classes: Sequence[str]) -> list[str]:
        """The table columns :meth:`metrics` reads."""
        raise NotImplementedError

    def metrics(self, frame: pd.DataFrame, classes: Sequence[str]) -> dict[str, Any]:
        """Metrics over the labelled rows of ``frame`` (one subset)."""
        raise NotImplementedError

    def headline(self, metrics: dict[str, Any]) -> list[tuple[str, float]]:
        """The few figures a page or report line shows first: ``[(name, value), ...]``."""
        raise NotImplementedError
