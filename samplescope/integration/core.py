"""The dataset-integration API: one ordinary Python module declares a dataset.

An integration names its subsets, how to encode a sample's input and ground
truth, which metadata to compute and how to show a sample to a person::

    from samplescope import Integration, Subset

    digits = Integration("digits", classes=[str(i) for i in range(10)])

    @digits.preprocess
    def load():                       # computed once, passed to everything else
        return load_my_arrays()

    @digits.subset("train")
    def train(state):
        return Subset(ids=range(len(state.x_train)), data=(state.x_train, state.y_train))

    @digits.input("image")
    def image(sample):                # sample.index, sample.data, sample.state ...
        x, _ = sample.data
        return x[sample.index][None].astype("float32") / 255

    @digits.ground_truth
    def label(sample):
        return int(sample.data[1][sample.index])

    @digits.metadata("ink")
    def ink(sample):
        return float(image(sample).mean())

Functions take one :class:`Sample`, or, when declared with ``batched=True``, a
:class:`Batch` of many samples of one subset and return arrays with one row per
sample (metadata: a dict of such arrays). Batched functions are how a large
dataset stays fast; per-sample functions are the simplest to write. Both kinds
go through the same checks (``samplescope check``).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from samplescope.errors import IntegrationError, PictureError, SamplescopeError
from samplescope.integration.inputs import InputKind, InputSpec, describe, infer_kind

if TYPE_CHECKING:
    from samplescope.tasks import Task

log = logging.getLogger(__name__)

#: The subset names samplescope knows how to use. ``train`` and ``validation``
#: are required; ``test`` and ``unlabeled`` are optional.
SUBSET_NAMES = ("train", "validation", "test", "unlabeled")

MetadataValue = float | int | str | bool | None

#: How a metadata column is read (``@x.metadata(..., kind=...)``): ``number`` (a quantity:
#: means, bins), ``category`` (unordered values), ``ordinal`` (few ordered values, e.g. a
#: rank) or ``class`` (a class index, shown by class name). Undeclared columns are inferred.
METADATA_KINDS = ("number", "category", "ordinal", "class")


@dataclasses.dataclass(frozen=True)
class Subset:
    """A named population: its sample ids and whatever data the functions need.

    ``ids`` are the user's own keys (ints or strings, unique within the subset);
    a sample's ``index`` is its position in ``ids``.
    """

    ids: Sequence[Any]
    data: Any = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One sample, as an integration function sees it."""

    subset: str
    index: int
    id: Any
    data: Any
    state: Any


@dataclasses.dataclass(frozen=True)
class Batch:
    """Many samples of one subset, for functions declared ``batched=True``."""

    subset: str
    indices: np.ndarray  # (B,) int64 positions in the subset
    ids: list[Any]
    data: Any
    state: Any

    def __len__(self) -> int:
        return len(self.indices)


@dataclasses.dataclass(frozen=True)
class Function:
    """A declared integration function and how to call it."""

    kind: Literal["input", "ground_truth", "metadata", "visualizer"]
    name: str
    fn: Callable[..., Any]
    batched: bool = False


class Integration:
    """A dataset declared for samplescope.

    Parameters
    ----------
    name:
        Short identifier, used in run folders and the web app.
    classes:
        Class names, in the order of the ground-truth class indices (classification and
        multi-label; a regression integration has none).
    task:
        ``"classification"`` (the default: ground truth is a class index),
        ``"regression"`` (a float), ``"multilabel"`` (a list of class indices or a (C,)
        0/1 vector), or a :class:`samplescope.tasks.Task` object with its parameters,
        e.g. ``Regression(target="progression", threshold=10.0)``.
    target:
        Regression only: what the target is called (``Regression(target=...)``).
    version:
        Bump it when the integration's outputs change; it is recorded in runs.
    """

    def __init__(
        self,
        name: str,
        classes: Sequence[str] | None = None,
        task: str | Task = "classification",
        version: str = "1",
        *,
        target: str | None = None,
    ) -> None:
        from samplescope.tasks import get_task

        try:
            self.task: Task = get_task(task, **({"target": target} if target is not None else {}))
        except SamplescopeError as exc:
            raise IntegrationError(f"Integration {name!r}: {exc}") from exc
        if self.task.needs_classes and not classes:
            raise IntegrationError(
                f"Integration {name!r} declares no classes; pass classes=[...] (task {self.task.name!r} needs them)."
            )
        if not self.task.needs_classes and classes:
            raise IntegrationError(
                f"Integration {name!r}: task {self.task.name!r} takes no classes, got {list(classes)[:5]}; drop classes=."
            )
        self.name = name
        self.classes = [str(c) for c in classes] if classes else []
        self.version = version
        # Where it is declared, so a run can load it again: the declaring module's file
        # and name (the loader sets them again when it loads a file by path).
        caller = inspect.currentframe().f_back  # type: ignore[union-attr]
        self.source: str | None = caller.f_globals.get("__file__") if caller else None
        self.module: str | None = caller.f_globals.get("__name__") if caller else None
        self._preprocess: Callable[[], Any] | None = None
        self._subsets: dict[str, Callable[[Any], Subset]] = {}
        self.inputs: dict[str, Function] = {}
        #: what each input declared beside its function: kind, feature names, vocabulary
        self.input_specs: dict[str, InputSpec] = {}
        #: how samplescope.integrations rebuilds a no-code integration from data (JSON, recorded in
        #: run.json), and the function that writes its data into a run folder; None for code
        self.rebuild: dict[str, Any] | None = None
        self.write_data: Callable[[Any], None] | None = None
        self.ground_truth_fn: Function | None = None
        self.metadata_fns: dict[str, Function] = {}
        #: declared metadata kinds: {column: kind}, or {function name: kind} for every column it returns
        self.metadata_kinds: dict[str, str] = {}
        self.visualizers: dict[str, Function] = {}
        self._state: Any = None
        self._state_ready = False
        self._subset_cache: dict[str, Subset] = {}
        # preprocess and the subset functions run once, even when a server's threads ask
        # together (two threads importing a library inside preprocess can break its import)
        self._once = threading.RLock()

    # -- declaration (decorators) -------------------------------------------

    def preprocess(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Declare the state computed once (e.g. load arrays, class centroids)."""
        self._preprocess = fn
        return fn

    def subset(self, name: str) -> Callable[[Callable[[Any], Subset]], Callable[[Any], Subset]]:
        """Declare a subset: a function ``(state) -> Subset``."""
        if name not in SUBSET_NAMES:
            raise IntegrationError(
                f"Subset name {name!r} is not one of {SUBSET_NAMES}; rename it."
            )

        def register(fn: Callable[[Any], Subset]) -> Callable[[Any], Subset]:
            self._subsets[name] = fn
            return fn

        return register

    def input(
        self, name: str = "input", *, batched: bool = False, kind: InputKind | None = None,
        feature_names: Sequence[str] | None = None, vocabulary: Sequence[str] | None = None,
    ) -> Callable[[Callable], Callable]:
        """Declare an input encoder: sample -> array (the model's input, no batch axis).

        ``kind``: ``"image"`` (C, H, W), ``"vector"`` (F,) or ``"tokens"`` (T,) ids; inferred
        from the first encoded sample when not given (see :mod:`samplescope.integration.inputs`).
        ``feature_names`` name a vector's values; ``vocabulary`` lists the tokens (id 0 is padding).
        """
        self.input_specs[name] = InputSpec.declare(name, kind, feature_names, vocabulary)
        return self._register("input", name, batched, self.inputs)

    def metadata(
        self, name: str, *, batched: bool = False, kind: str | dict[str, str] | None = None
    ) -> Callable[[Callable], Callable]:
        """Declare metadata: sample -> scalar, or a dict of scalars (one column per key).

        A dict's keys become the column names; a scalar's column is ``name``. ``kind`` says
        how the column is read (one of :data:`METADATA_KINDS`): a str for every column the
        function returns, or ``{column: kind}``; undeclared columns are inferred (strings
        and bools are categories, other numbers numbers).
        """
        declared = kind if isinstance(kind, dict) else ({} if kind is None else {name: kind})
        for column, k in declared.items():
            if k not in METADATA_KINDS:
                raise IntegrationError(
                    f"metadata {name!r}: kind {k!r} for column {column!r} is not one of {METADATA_KINDS}."
                )
        self.metadata_kinds.update(declared)
        return self._register("metadata", name, batched, self.metadata_fns)

    def visualizer(self, name: str = "image") -> Callable[[Callable], Callable]:
        """Declare a visualizer: sample -> (H, W) or (H, W, 3) uint8/float image for people."""
        return self._register("visualizer", name, False, self.visualizers)

    @property
    def ground_truth(self) -> Callable[[Callable], Callable]:
        """Declare the ground-truth encoder: sample -> class index. Use as ``@x.ground_truth``."""

        def register(fn: Callable) -> Callable:
            self.ground_truth_fn = Function("ground_truth", _name_of(fn, "ground_truth"), fn, False)
            return fn

        return register

    def ground_truth_batched(self, fn: Callable) -> Callable:
        """Like :attr:`ground_truth`, for a function of a :class:`Batch`."""
        self.ground_truth_fn = Function("ground_truth", _name_of(fn, "ground_truth"), fn, True)
        return fn

    def _register(self, kind: Any, name: str, batched: bool, table: dict[str, Function]):
        def register(fn: Callable) -> Callable:
            if name in table:
                raise IntegrationError(f"{kind} {name!r} is declared twice; give each a unique name.")
            table[name] = Function(kind, name, fn, batched)
            return fn

        return register

    # -- use -----------------------------------------------------------------

    @property
    def state(self) -> Any:
        """The preprocess state, computed on first use."""
        if not self._state_ready:
            with self._once:
                if not self._state_ready:
                    if self._preprocess is not None:
                        self._state = _call("preprocess", self._preprocess)
                    self._state_ready = True
        return self._state

    @property
    def subset_names(self) -> list[str]:
        """Declared subsets, in the canonical order (train, validation, test, unlabeled)."""
        return [n for n in SUBSET_NAMES if n in self._subsets]

    def get_subset(self, name: str) -> Subset:
        if name not in self._subsets:
            raise IntegrationError(
                f"Integration {self.name!r} has no subset {name!r}; it declares {self.subset_names}."
            )
        if name not in self._subset_cache:
            with self._once:
                if name not in self._subset_cache:
                    self._subset_cache[name] = self._make_subset(name)
        return self._subset_cache[name]

    def _make_subset(self, name: str) -> Subset:
        sub = _call(f"subset {name!r}", self._subsets[name], self.state)
        if not isinstance(sub, Subset):
            raise IntegrationError(
                f"subset function for {name!r} returned {type(sub).__name__}; "
                "return samplescope.Subset(ids=..., data=...)."
            )
        return sub

    @property
    def input_name(self) -> str:
        if not self.inputs:
            raise IntegrationError(
                f"Integration {self.name!r} declares no input; add an @{self.name}.input() function."
            )
        return next(iter(self.inputs))

    @property
    def input_spec(self) -> InputSpec:
        return self.input_specs.get(self.input_name, InputSpec())

    @property
    def input_kind(self) -> str:
        """``image``, ``vector`` or ``tokens``: declared, else inferred from the first train sample."""
        cached = getattr(self, "_input_kind", None)
        if cached is None:
            first = self.first_nonempty_subset()
            fn = self.inputs[self.input_name]
            raw = self._apply(fn, first, np.arange(1))[0]  # as the function returns it: its dtype tells tokens
            cached = self._input_kind = infer_kind(self.input_name, raw, self.input_spec)
        return cached

    def first_nonempty_subset(self) -> str:
        """The first declared subset that has samples (the one the input kind is read from)."""
        for name in self.subset_names:
            if len(self.get_subset(name).ids):
                return name
        raise IntegrationError(
            f"Integration {self.name!r}: every subset ({', '.join(self.subset_names) or 'none declared'}) is empty, "
            "so there is no sample to read the input from; make @x.subset return at least one sample id."
        )

    def input_description(self, shape: Sequence[int]) -> dict[str, Any]:
        """What a run records about its input (kind, shape, feature names or vocabulary)."""
        return describe(self.input_kind, shape, self.input_spec)

    def sample(self, subset: str, index: int) -> Sample:
        sub = self.get_subset(subset)
        return Sample(subset, int(index), sub.ids[int(index)], sub.data, self.state)

    def batch(self, subset: str, indices: Sequence[int] | np.ndarray) -> Batch:
        sub = self.get_subset(subset)
        idx = np.asarray(indices, dtype=np.int64)
        return Batch(subset, idx, [sub.ids[i] for i in idx], sub.data, self.state)

    def iter_batches(self, subset: str, batch_size: int = 4096) -> Iterator[Batch]:
        n = len(self.get_subset(subset))
        for start in range(0, n, batch_size):
            yield self.batch(subset, np.arange(start, min(start + batch_size, n)))

    def encode_inputs(self, subset: str, indices: Sequence[int] | np.ndarray, name: str | None = None) -> np.ndarray:
        """Encoded model inputs for many samples: (B, *input_shape) float32."""
        fn = self.inputs[name or self.input_name]
        return np.asarray(self._apply(fn, subset, indices), dtype=np.float32)

    def encode_labels(self, subset: str, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Ground truth for many samples, as the task encodes it: class indices (B,) int64,
        regression targets (B,) float64, or multi-label (B, C) int8 0/1."""
        if self.ground_truth_fn is None:
            raise IntegrationError(
                f"Integration {self.name!r} declares no ground truth; add @{self.name}.ground_truth."
            )
        values = self._apply(self.ground_truth_fn, subset, indices, stack=False)
        try:
            return self.task.encode_labels(values, len(indices), self.classes)
        except (TypeError, ValueError) as exc:
            raise IntegrationError(
                f"Integration {self.name!r}: the ground truth of subset {subset!r} cannot be read as "
                f"{self.task.name} labels ({exc}); run `samplescope check` on the integration."
            ) from exc

    def compute_metadata(self, subset: str, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Every metadata column for many samples, as ``{column: (B,) array}``."""
        columns: dict[str, np.ndarray] = {}
        for fn in self.metadata_fns.values():
            columns.update(_as_columns(fn, self._apply(fn, subset, indices, stack=False), len(indices)))
        return columns

    def visualize(self, subset: str, index: int, name: str | None = None) -> np.ndarray:
        """A picture of one sample for people: (H, W) or (H, W, 3) uint8.

        :class:`PictureError` when there is none: the input has a shape no built-in picture
        draws and no visualizer is declared, or the visualizer returned no (H, W[, 3]) picture.
        """
        where = f"visualize(subset {subset!r}, index {index})"
        if not self.visualizers:
            # Fall back to the input: an image as it is, a vector as a feature table, tokens as text
            from samplescope.integration.pictures import default_picture

            x = self.encode_inputs(subset, [index])[0]
            if x.ndim == 2:  # (H, W): a brought model's grey image without a channel axis (create_run)
                picture = to_uint8_image(x)
            elif x.ndim in (1, 3):
                stats = self.feature_stats() if self.input_kind == "vector" else None
                picture = default_picture(self.input_kind, x, self.input_spec, stats)
            if x.ndim not in (1, 2, 3) or not _is_picture(picture):
                raise PictureError(
                    f"{where}: input {self.input_name!r} has shape {tuple(x.shape)}, which no built-in picture "
                    "draws (they take (H, W) and (C, H, W) images with C = 1 or 3, (F,) vectors, (T,) tokens); "
                    "declare @integ.visualizer('image') returning an (H, W) or (H, W, 3) picture of the sample."
                )
            return picture
        fn = self.visualizers[name or next(iter(self.visualizers))]
        picture = to_uint8_image(np.asarray(_call(fn.name, fn.fn, self.sample(subset, index))))
        if not _is_picture(picture):
            raise PictureError(
                f"{where}: visualizer {fn.name!r} returned shape {picture.shape}; return an (H, W) grey or "
                "(H, W, 3) colour picture (a (C, H, W) array with C = 1 or 3 is turned round)."
            )
        return picture

    def feature_stats(self, rows: int = 2000) -> tuple[np.ndarray, np.ndarray]:
        """A vector input's training (mean, std) per feature, from at most ``rows`` evenly spread
        training rows (computed once): what a sample's feature picture measures its values against."""
        cached = getattr(self, "_feature_stats", None)
        if cached is None:
            subset = "train" if "train" in self.subset_names else self.subset_names[0]
            n = len(self.get_subset(subset))
            x = self.encode_inputs(subset, np.unique(np.linspace(0, n - 1, min(n, rows)).astype(np.int64)))
            cached = self._feature_stats = (x.mean(axis=0), x.std(axis=0))
        return cached

    def _apply(self, fn: Function, subset: str, indices: Sequence[int] | np.ndarray, stack: bool = True) -> Any:
        if fn.batched:
            return _call(fn.name, fn.fn, self.batch(subset, indices))
        out = [_call(fn.name, fn.fn, self.sample(subset, int(i))) for i in indices]
        if not stack:
            return out
        return np.stack([np.asarray(o) for o in out]) if out else np.empty((0,))

    def identity(self) -> dict[str, Any]:
        """What a run records about the integration it was made with."""
        from samplescope.integration.loader import source_hash

        return {
            "name": self.name,
            "version": self.version,
            "classes": self.classes,
            "task": self.task.name,
            "metadata_kinds": dict(self.metadata_kinds),
            "source": self.source,
            "hash": source_hash(self.source) if self.source else None,
        } | ({"rebuild": self.rebuild} if self.rebuild is not None else {})

    def check(self, samples_per_subset: int = 8, seed: int = 0):
        """Exercise every declared function on real samples; see :mod:`samplescope.integration.check`."""
        from samplescope.integration.check import check_integration

        return check_integration(self, samples_per_subset=samples_per_subset, seed=seed)

    def __repr__(self) -> str:
        return (
            f"Integration({self.name!r}, classes={len(self.classes)}, subsets={self.subset_names}, "
            f"inputs={list(self.inputs)}, metadata={list(self.metadata_fns)})"
        )


def _name_of(fn: Callable[..., Any], default: str) -> str:
    name = getattr(fn, "__name__", default)
    return default if name == "<lambda>" else name


def _call(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except IntegrationError:
        raise
    except Exception as exc:  # the user's code failed: say which function and which sample
        where = ""
        if args and isinstance(args[0], Sample):
            where = f" on sample {args[0].subset}[{args[0].index}] (id {args[0].id!r})"
        elif args and isinstance(args[0], Batch):
            where = f" on a batch of {len(args[0])} {args[0].subset} samples"
        raise IntegrationError(
            f"Integration function {name!r} raised {type(exc).__name__}: {exc}{where}. "
            "Fix the function, then run `samplescope check` on the integration file."
        ) from exc


def _as_columns(fn: Function, value: Any, n: int) -> dict[str, np.ndarray]:
    """Turn one metadata function's output for n samples into named columns."""
    if fn.batched:
        if isinstance(value, dict):
            return {str(k): np.asarray(v) for k, v in value.items()}
        return {fn.name: np.asarray(value)}
    if n and isinstance(value[0], dict):
        keys = list(value[0])
        return {k: np.asarray([v.get(k) for v in value], dtype=object if _mixed(value, k) else None) for k in keys}
    return {fn.name: np.asarray(value)}


def _mixed(rows: list[dict[str, Any]], key: str) -> bool:
    return any(r.get(key) is None for r in rows)


def _is_picture(a: np.ndarray) -> bool:
    """(H, W) grey, (H, W, 3) colour or (H, W, 4) RGBA, each side at least one pixel."""
    return (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))) and min(a.shape[:2], default=0) > 0


def to_uint8_image(x: np.ndarray) -> np.ndarray:
    """Make a (H, W) or (H, W, 3) uint8 picture from a CHW/HWC float or uint8 array."""
    a = np.asarray(x)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype != np.uint8:
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if lo >= 0.0 and hi <= 1.0:
            a = a * 255.0
        elif hi > lo and not (lo >= 0 and hi <= 255):
            a = (a - lo) / (hi - lo) * 255.0
        a = np.clip(np.round(a), 0, 255).astype(np.uint8)
    return a
