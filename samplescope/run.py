"""A run folder and the Python API over it: ``samplescope.open_run(path)``.

The CLI, the server and the report all read runs through this class.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from samplescope.errors import NotFoundError, ParameterError, RunError
from samplescope.store import RunDatabase, layout
from samplescope.store.folder import RUN_JSON, is_run, read_run_info

log = logging.getLogger(__name__)

HeatmapMethod = Literal["gradcam", "integrated_gradients", "saliency"]
HEATMAP_METHODS: tuple[str, ...] = ("gradcam", "integrated_gradients", "saliency")
LATENT_FILE = layout.LATENT
GRADCAM_FILE = layout.GRADCAM
HEATMAP_CACHE = layout.HEATMAP_CACHE
#: the columns :meth:`Run.similar` gives beside sample_id, similarity and subset (by default)
NEIGHBOUR_COLUMNS: tuple[str, ...] = ("label", "prediction", "loss")


def open_run(
    path: str | Path,
    *,
    trust: bool = False,
    integration: str | Path | Any | None = None,
    model: Any | None = None,
    device: str | None = "auto",
) -> Run:
    """Open the run folder at ``path`` (written by ``samplescope train`` or ``create_run``).

    Opening runs no code from the run: tables, latent vectors, the map, insights and
    stored heatmaps are data. Features that need the run's code (sample images and
    inputs, the model, new heatmaps, ``analyze``) import it only when it is built in,
    when ``trust=True``, when its hash is in the user's trust list (``samplescope
    trust``), or from an ``integration`` (a file, built-in name or ``Integration``)
    and a ``model`` (an ``nn.Module`` to load the weights into) that you pass.
    ``device`` is where :meth:`Run.model` (and so heatmaps) runs: ``auto`` = CUDA when
    there is one, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    """
    return Run(path, trust=trust, integration=integration, model=model, device=device)


def as_run(run: Run | str | Path) -> Run:
    """``run`` itself when it is an open :class:`Run`, else the run folder it names, opened."""
    return run if isinstance(run, Run) else open_run(run)


class Run:
    """A trained model, its dataset and (after ``analyze``) everything samplescope found."""

    def __init__(
        self,
        path: str | Path,
        *,
        trust: bool = False,
        integration: str | Path | Any | None = None,
        model: Any | None = None,
        device: str | None = "auto",
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise RunError(
                f"Run folder {self.path} does not exist. Train one with `samplescope train --out {self.path}`."
            )
        if not is_run(self.path):
            raise RunError(f"{self.path} is not a samplescope run (no {RUN_JSON}); train one into it first.")
        self.info: dict[str, Any] = read_run_info(self.path)
        self.db = RunDatabase(self.path / layout.DATABASE)
        self._trust = bool(trust)
        self._given_integration = integration
        self._given_model = model
        self._device_spec = device
        self._lock = threading.RLock()
        self._heatmap_cache: OrderedDict[tuple[int, int, str], np.ndarray] = OrderedDict()

    # -- identity ------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def classes(self) -> list[str]:
        return list(self.info["integration"]["classes"])

    @property
    def task(self):
        """The run's :class:`samplescope.tasks.Task` (run.json ``task``; classification when absent)."""
        from samplescope.tasks import task_from_info

        return task_from_info(self.info)

    @property
    def subsets(self) -> list[str]:
        return list(self.info["subsets"])

    @property
    def input_kind(self) -> str:
        """``image``, ``vector`` or ``tokens`` (samplescope/integration/inputs.py)."""
        from samplescope.integration.inputs import kind_of_run

        return kind_of_run(self.info)

    @property
    def feature_names(self) -> list[str]:
        """A vector run's feature names, in input order; [] for other input kinds."""
        from samplescope.integration.inputs import feature_names

        return feature_names(self.info) if self.input_kind == "vector" else []

    def attribution_methods(self) -> dict[str, str | None]:
        """``{method: None}`` for each heatmap method that applies to this run, else why it does not.

        Read from run.json alone (no model is loaded): an image run's Grad-CAM applies when the
        run recorded a conv layer (every trained CNN does) or its model is built in.
        """
        from samplescope.analysis.methods import methods_for_kind

        out = methods_for_kind(self.input_kind)
        shape = tuple(self.info.get("input_shape") or ())
        if self.input_kind == "image" and len(shape) not in (2, 3):  # a brought model's input of another shape
            why = (f"the run's inputs have shape {shape}, neither an image (C, H, W) or (H, W), a vector (F,) nor "
                   "tokens (T,), the shapes heatmaps are drawn for")
            return dict.fromkeys(out, why)
        if self.input_kind == "image" and not self.info.get("gradcam_layer") and not self.code.builtin_model:
            out["gradcam"] = None if self._model_has_conv() else (
                "Grad-CAM needs a convolution layer and the run's model has no nn.Conv2d")
        return out

    def attribution_labels(self, sample_id: int) -> list[str] | None:
        """What each value of a vector's or tokens' heatmap is: the feature names, or the sample's tokens."""
        if self.input_kind == "vector":
            return self.feature_names
        if self.input_kind == "tokens":
            vocabulary = (self.info.get("input") or {}).get("vocabulary") or []
            ids = self.input(sample_id).round().astype(np.int64)
            return [str(vocabulary[i]) if 0 <= i < len(vocabulary) else f"<{i}>" for i in ids]
        return None

    def attribution_padding(self, sample_id: int) -> list[bool] | None:
        """A tokens run's padding (id 0) per value of the sample's heatmap, which no view shows; else None."""
        if self.input_kind != "tokens":
            return None
        return (np.round(self.input(sample_id)).astype(np.int64) == 0).tolist()

    def _model_has_conv(self) -> bool:
        from samplescope.errors import SamplescopeError

        try:
            from torch import nn

            return any(isinstance(m, nn.Conv2d) for m in self.model().modules())
        except SamplescopeError:  # an untrusted or unloadable model: say Grad-CAM may apply, the request tells
            return True

    @property
    def latent_layer(self) -> str | None:
        analysis = self.info.get("analysis") or {}
        return analysis.get("latent_layer") or self.info.get("latent_layer")

    @property
    def analyzed(self) -> bool:
        return bool(self.info.get("analysis"))

    def require_analysis(self) -> None:
        if not self.analyzed:
            raise RunError(
                f"Run {self.path} has not been analysed yet; run `samplescope analyze {self.path}` first."
            )

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, samples={len(self)}, analyzed={self.analyzed})"

    def __len__(self) -> int:
        return self._n()

    # -- tables: every read is a DuckDB query (store/), nothing holds the whole table ----------

    @functools.cache  # noqa: B019 - one Run per folder; the cache lives as long as it does
    def _n(self) -> int:
        """The number of samples, after checking the table's shape once (ids 0..N-1, key columns)."""
        columns = self.db.columns()
        missing = [c for c in ("sample_id", "subset", "index", "label") if c not in columns]
        if missing:
            raise RunError(
                f"{self.path / layout.DATABASE}: the samples table has no column(s) {missing}; "
                "the run is damaged, train it again."
            )
        # ids equal to the table's row ids (unique) are distinct: one scan (0.04 s at 10M rows),
        # where counting the distinct ids hashes every one (1.2 s); only a table written in
        # another order is counted
        stats = self.db.fetch('SELECT count(*) AS n, min("sample_id") AS lo, max("sample_id") AS hi, '
                              'bool_and("sample_id" = rowid) AS in_order FROM samples').iloc[0]
        n = int(stats["n"])
        distinct = n if bool(stats["in_order"] == True) else int(  # NULL (NaN) for an empty table
            self.db.fetch('SELECT count(DISTINCT "sample_id") AS d FROM samples').iloc[0]["d"])
        if n and not (int(stats["lo"]) == 0 and int(stats["hi"]) == n - 1 and distinct == n):
            raise RunError(f"{self.path}: sample ids are not 0..N-1; the run is damaged, train it again.")
        return n

    def samples(
        self,
        columns: list[str] | None = None,
        subset: str | None = None,
        *,
        where: Any = None,
        order_by: str | list[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> pd.DataFrame:
        """Samples as rows (ids, subset, label, metadata, and analysis columns), queried in DuckDB.

        ``columns`` picks columns (``sample_id`` always comes first); ``where`` filters
        (``{"label": 3, "loss": (1.0, None)}``, ``[("prediction", "!=", 3)]`` or a SQL
        expression, see :mod:`samplescope.store.query`); ``order_by`` sorts (``"-loss"``
        for descending; ties by ``sample_id``); ``limit``/``offset`` page. Without them,
        every sample in ``sample_id`` order.
        """
        self._check_subset(subset)
        self._n()
        return self.db.samples(columns, subset, where=where, order_by=order_by, limit=limit, offset=offset)

    def count(self, where: Any = None, subset: str | None = None) -> int:
        """How many samples match ``where`` (as in :meth:`samples`) in ``subset``."""
        self._check_subset(subset)
        return self._n() if where is None and subset is None else self.db.count(where, subset)

    def history(self) -> pd.DataFrame:
        """Training curves: one row per evaluation (``kind`` is ``step`` or ``epoch``)."""
        return self.db.history()

    def metadata_columns(self) -> list[str]:
        """Columns that came from the integration's metadata functions."""
        analysis = set((self.info.get("analysis") or {}).get("columns") or [])
        base = {"sample_id", "subset", "index", "key", "label"}
        return [c for c in self.db.columns() if c not in base and c not in analysis]

    def _check_subset(self, subset: str | None) -> None:
        if subset is not None and subset not in self.subsets:
            raise NotFoundError(f"Unknown subset {subset!r}; this run has {self.subsets}.")

    def _check_id(self, sample_id: int) -> int:
        n = self._n()
        sid = int(sample_id)
        if not 0 <= sid < n:
            raise NotFoundError(f"Sample id {sample_id} does not exist; ids run from 0 to {n - 1}.")
        return sid

    def _row(self, sample_id: int) -> pd.Series:
        sid = self._check_id(sample_id)
        return self.db.samples(where=[("sample_id", "==", sid)]).iloc[0]

    def _locate(self, sample_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(subset index into ``self.subsets``, index within the subset) of each id.

        Sample ids are numbered subset after subset (train, validation, ...), so this is
        arithmetic on the subset sizes, with no query.
        """
        ids = np.asarray(sample_ids, dtype=np.int64)
        starts = self._subset_starts()
        bad = (ids < 0) | (ids >= starts[-1])
        if bad.any():
            self._check_id(int(ids[bad][0]))
        which = np.searchsorted(starts, ids, side="right") - 1
        return which, ids - starts[which]

    @functools.cache  # noqa: B019
    def _subset_starts(self) -> np.ndarray:
        """First sample id of each subset, then N: ``[0, n_train, n_train + n_val, ..., N]``."""
        sizes = [int(v) for v in self.info["subsets"].values()]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if starts[-1] != self._n():
            raise RunError(
                f"{self.path / layout.RUN_JSON} lists {starts[-1]} samples in its subsets, the database "
                f"{self._n()}; the run is damaged, train it again."
            )
        return starts

    # -- model and inputs ----------------------------------------------------

    # -- trust: which of the run's code may run ----------------------------

    @functools.cached_property
    def code(self):
        """The code this run names (integration file, model class); see :mod:`samplescope.trust`."""
        from samplescope.trust import RunCode

        return RunCode.of(self.info)

    @property
    def trusted(self) -> bool:
        """Whether every feature is available: the run's code is built in, given, or trusted."""
        return self._integration_allowed() and self._model_allowed()

    def trust_status(self) -> dict[str, Any]:
        """What the run's trust allows, for people: ``{"trusted", "inputs", "model", "hint"}``.

        ``inputs`` covers sample images and inputs (the integration's code), ``model``
        the model class; ``hint`` says what needs trust and how to grant it (None when trusted).
        """
        from samplescope.trust import trust_hint

        inputs, model = self._integration_allowed(), self._model_allowed()
        missing = [w for w, ok in (("sample images and inputs", inputs), ("new heatmaps", inputs and model)) if not ok]
        hint = None
        if missing:
            hint = (f"{' and '.join(missing)} need this run's code ({self.code.what_needs_trust()}), which is not "
                    f"trusted here; {trust_hint(self.path)}")
        return {"trusted": inputs and model, "inputs": inputs, "model": model, "hint": hint}

    def _integration_allowed(self) -> bool:
        return self._trust or self._given_integration is not None or self.code.integration_trusted()

    def _model_allowed(self) -> bool:
        if self._trust or self._given_model is not None:
            return True
        return self.code.model_trusted(self._integration_allowed())

    def integration_changed(self) -> bool:
        """Whether the recorded integration file differs from the one the run was made with (nothing is run)."""
        from samplescope.integration.loader import source_hash

        code = self.code
        if self._given_integration is not None or not (code.integration_source and code.integration_hash):
            return False
        return source_hash(code.integration_source) != code.integration_hash

    def _refuse(self, feature: str, what: str) -> None:
        from samplescope.errors import TrustError
        from samplescope.trust import trust_hint

        raise TrustError(
            f"{feature} needs the run's code ({what}), and run {self.path} was not made with code you "
            f"trust, so none of it was run; {trust_hint(self.path)}."
        )

    # -- model and inputs ----------------------------------------------------

    @functools.cache  # noqa: B019
    def integration(self):
        """The integration the run was made with (warns when its source changed since).

        Raises :class:`~samplescope.errors.TrustError` (before importing anything) when
        the recorded integration file is not trusted.
        """
        from samplescope.integration.core import Integration
        from samplescope.integration.loader import load_integration, source_hash

        given = self._given_integration
        if isinstance(given, Integration):
            return given
        rebuild = self.info["integration"].get("rebuild")
        if given is None and rebuild:  # a no-code integration: rebuilt from data, nothing of the run runs
            from samplescope.integrations import rebuild_integration

            return rebuild_integration(self.path, rebuild)
        code = self.code
        if given is None and not self._integration_allowed():
            self._refuse("Reading samples' inputs and images", f"integration file {code.integration_source}")
        spec = given or code.integration_builtin or code.integration_source or self.info["integration"]["name"]
        integ = load_integration(spec)
        recorded, now = code.integration_hash, source_hash(integ.source)
        if given is None and recorded and now and recorded != now:
            warnings.warn(
                f"Integration {integ.source} changed since run {self.name} was made "
                "(hash mismatch); inputs may differ from what the model was trained on.",
                stacklevel=2,
            )
        return integ

    @functools.cache  # noqa: B019
    def model(self):
        """The trained ``nn.Module``, in eval mode.

        Weights are read as data (safetensors, or a legacy state dict with
        ``weights_only=True``); the model class is imported only when it is built in,
        trusted, or given as ``open_run(path, model=...)``.
        """
        from samplescope.models.persist import load_weights

        if not self._model_allowed():
            self._refuse("Loading the model", f"model class {self.code.model_class}")
        model = load_weights(self.path, self.info, self._given_model, self._model_class, self._pickle_trusted)
        return model.to(self.device).eval()

    @functools.cached_property
    def device(self):
        """The ``torch.device`` the model runs on (resolved from ``open_run(device=...)`` on first use)."""
        from samplescope.device import resolve_device

        return resolve_device(self._device_spec)

    def _pickle_trusted(self) -> bool:
        """A layout-1 pickled model may be unpickled: trust=True, or its file's hash is trusted."""
        from samplescope.integration.loader import source_hash
        from samplescope.trust import is_trusted_hash

        return self._trust or is_trusted_hash(source_hash(str(self.path / layout.LEGACY_WEIGHTS)))

    def _model_class(self) -> type:
        """Import the recorded model class (only called once trust is settled)."""
        from samplescope.models.persist import import_model_class

        return import_model_class(self.code.model_class, self.integration)

    def input(self, sample_id: int) -> np.ndarray:
        """The encoded model input of one sample, as the model receives it, without the batch axis."""
        return self.inputs([self._check_id(sample_id)])[0]

    def inputs(self, sample_ids: list[int] | np.ndarray) -> np.ndarray:
        """Encoded inputs for many samples, (B, *input_shape) float32."""
        which, index = self._locate(np.asarray(sample_ids, dtype=np.int64))
        integ = self.integration()
        out = np.empty((len(which), *self.info["input_shape"]), np.float32)
        for s in np.unique(which):
            pos = np.flatnonzero(which == s)
            out[pos] = integ.encode_inputs(self.subsets[s], index[pos])
        return out

    def image(self, sample_id: int) -> np.ndarray:
        """A picture of the sample for people: (H, W) or (H, W, 3) uint8."""
        which, index = self._locate(np.array([self._check_id(sample_id)]))
        integ = self.integration()
        return integ.visualize(self.subsets[int(which[0])], int(index[0]))

    # -- analysis ------------------------------------------------------------

    @functools.cache  # noqa: B019
    def latent(self) -> np.ndarray:
        """Latent vectors (N, D) float32, rows aligned with :meth:`samples` (memory-mapped)."""
        self.require_analysis()
        path = self.path / LATENT_FILE
        again = f"analyse the run again (`samplescope analyze {self.path}`)"
        try:
            latent = np.load(path, mmap_mode="r")
        except FileNotFoundError as exc:
            raise RunError(f"{path} is missing (the latent vectors of the analysis); {again}.") from exc
        except (OSError, ValueError, EOFError) as exc:  # truncated, random bytes, not an .npy file
            raise RunError(f"{path} cannot be read ({exc}); the file is damaged, {again}.") from exc
        n = self._n()
        if latent.ndim != 2 or latent.shape[0] != n:
            raise RunError(
                f"{path} holds an array of shape {latent.shape}, not one row per sample ({n}); {again}."
            )
        return latent

    @functools.cache  # noqa: B019
    def _neighbors(self):
        """The neighbour engine analyze saved (graph, and IVF index when large); runs analysed
        before it was saved get one fitted on the latent vectors."""
        from samplescope.analysis.neighbors import NeighborIndex
        from samplescope.errors import NotFoundError

        try:
            return NeighborIndex.load(self.path, self.latent())
        except NotFoundError:
            log.info("%s has no saved neighbour graph; fitting one on its latent vectors", self.path)
            return NeighborIndex(metric="cosine").fit(np.asarray(self.latent()))

    def _subset_mask(self, subset: str | None) -> np.ndarray | None:
        self._check_subset(subset)
        return None if subset is None else self._subset_masks()[subset]

    @functools.cache  # noqa: B019
    def _subset_masks(self) -> dict[str, np.ndarray]:
        starts, n = self._subset_starts(), self._n()
        masks = {}
        for i, name in enumerate(self.subsets):
            mask = np.zeros(n, bool)
            mask[starts[i] : starts[i + 1]] = True
            masks[name] = mask
        return masks

    def similar(
        self, sample_id: int, k: int = 10, subset: str | None = None, columns: Sequence[str] = NEIGHBOUR_COLUMNS
    ) -> pd.DataFrame:
        """The k samples the model considers most like ``sample_id`` (cosine similarity of latents)."""
        self._check_id(sample_id)
        _check_k(k)
        rows, sims = self._neighbors().query(np.array([int(sample_id)]), k=k, mask=self._subset_mask(subset))
        return self._neighbour_frame(rows[0], sims[0], columns)

    def similar_to_set(
        self, sample_ids: list[int], k: int = 10, subset: str | None = None, columns: Sequence[str] = NEIGHBOUR_COLUMNS
    ) -> pd.DataFrame:
        """The k samples most like a set of samples (excluding the set itself)."""
        if len(sample_ids) == 0:
            raise ParameterError("similar_to_set() needs at least one sample id.")
        for s in sample_ids:
            self._check_id(s)
        _check_k(k)
        rows, sims = self._neighbors().query_set(np.asarray(sample_ids, np.int64), k=k, mask=self._subset_mask(subset))
        return self._neighbour_frame(rows, sims, columns)

    def _neighbour_frame(self, rows: np.ndarray, sims: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
        """sample_id, similarity, subset and ``columns`` (those the run has) of the found rows, in
        their order: one query."""
        rows = np.asarray(rows, np.int64)
        keep = rows >= 0
        rows, sims = rows[keep], np.asarray(sims)[: len(keep)][keep]
        available = self.db.columns()
        wanted = [c for c in columns if c in available and c not in ("sample_id", "subset")]
        found = self.db.rows(rows, wanted)
        which, _ = self._locate(rows)
        return pd.DataFrame({
            "sample_id": rows, "similarity": sims.astype(np.float32),
            "subset": np.asarray(self.subsets, dtype=object)[which], **{c: found[c] for c in wanted},
        })

    def heatmap(self, sample_id: int, target: int | None = None, method: HeatmapMethod = "gradcam") -> np.ndarray:
        """Which input pixels push the model towards class ``target`` (default: the prediction).

        An image run's map is (H, W); a vector run's one value per feature (F,) and a tokens
        run's one per token (T,); :meth:`attribution_methods` says which methods apply.

        Computed on first use and cached in memory and in the run folder (``heatmaps/``);
        ``analyze --heatmaps all`` precomputes Grad-CAM for every sample's predicted and true class.
        """
        row = self._row(sample_id)
        if method not in HEATMAP_METHODS:
            raise ParameterError(f"Unknown heatmap method {method!r}; choose one of {HEATMAP_METHODS}.")
        why = self.attribution_methods().get(method)
        if why is not None:
            usable = [m for m, reason in self.attribution_methods().items() if reason is None]
            fix = f"use method={' or '.join(repr(m) for m in usable)}" if usable else "this run has no heatmaps"
            raise ParameterError(f"run.heatmap(sample {sample_id}, method={method!r}): {why} ({self.input_kind} input); {fix}.")
        task = self.task
        n = task.output_width(self.classes)  # the model's outputs a heatmap may explain
        if target is None:
            target = default_target(task, row)
        if not 0 <= int(target) < n and task.name == "classification":
            raise ParameterError(f"Class index {target} is out of range; this run's classes are 0..{n - 1}.")
        if not 0 <= int(target) < n:
            raise ParameterError(
                f"Output index {target} is out of range; this {task.name} run's model outputs are 0..{n - 1}."
            )
        key = (int(sample_id), int(target), method)
        with self._lock:
            if key in self._heatmap_cache:
                self._heatmap_cache.move_to_end(key)
                return self._heatmap_cache[key]
        value = self._precomputed_gradcam(row, int(target)) if method == "gradcam" else None
        if value is None:
            value = self._stored_heatmap(int(sample_id), int(target), method)
        with self._lock:
            self._heatmap_cache[key] = value
            while len(self._heatmap_cache) > 2048:
                self._heatmap_cache.popitem(last=False)
        return value

    def _stored_heatmap(self, sample_id: int, target: int, method: str) -> np.ndarray:
        """From the run folder's cache, else computed and written there (store/heatmap_cache.py:
        capped in bytes, the least recently used evicted)."""
        from samplescope.store import heatmap_cache

        cache = heatmap_cache.for_folder(self.path / HEATMAP_CACHE)
        value = cache.get(method, sample_id, target)
        if value is None:
            x = self.input(sample_id)
            if self._channelless:  # (H, W): the wrapped model of _attribution takes (1, H, W)
                x = x[None]
            value = self._attribution(method).attribute(x, target=target)
            value = np.asarray(value, dtype=np.float32)
            cache.put(method, sample_id, target, value)
        return value

    @functools.cache  # noqa: B019
    def _attribution(self, method: str):
        from samplescope.analysis.attribution import Attribution

        layer = self.info.get("gradcam_layer") if method == "gradcam" else None
        with self._lock:
            model = self.model()
            baseline = None
            if self.input_kind == "vector":  # IG from an average sample: the MLP's training mean, if it has one
                mean = getattr(getattr(model, "normalize", None), "mean", None)
                if mean is not None and tuple(mean.shape) == tuple(self.info["input_shape"]):
                    baseline = mean.detach().cpu().numpy()
            if self._channelless:  # a brought model taking (N, H, W) grey images: explained as (N, 1, H, W)
                model, layer = with_channel_axis(model), f"inner.{layer}" if layer else None
            return Attribution(model, method=method, layer=layer, input_kind=self.input_kind, baseline=baseline)

    @property
    def _channelless(self) -> bool:
        """An image run whose model takes (H, W) inputs, without a channel axis (create_run)."""
        return self.input_kind == "image" and len(self.info.get("input_shape") or ()) == 2

    @functools.cache  # noqa: B019
    def _gradcam_store(self) -> np.ndarray | None:
        path = self.path / GRADCAM_FILE
        if not path.exists():
            return None
        again = f"analyse the run again (`samplescope analyze {self.path} --heatmaps all`)"
        try:
            store = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:  # truncated, random bytes, not an .npy file
            raise RunError(f"{path} cannot be read ({exc}); the file is damaged, {again}.") from exc
        if store.ndim != 4 or store.shape[:2] != (self._n(), 2):
            raise RunError(f"{path} holds shape {store.shape}, not (samples, 2, H, W); {again}.")
        return store

    def _precomputed_gradcam(self, row: pd.Series, target: int) -> np.ndarray | None:
        store = self._gradcam_store()
        if store is None or "prediction" not in row or self.task.name != "classification":
            return None
        sid = int(row["sample_id"])
        if target == int(row["prediction"]):
            return np.asarray(store[sid, 0], np.float32)
        if target == int(row["label"]):
            return np.asarray(store[sid, 1], np.float32)
        return None

    def insights(self, kind: str | None = None) -> list[Any]:
        """What the insight finders found, most severe first."""
        from samplescope.analysis.insights.base import Insight

        self.require_analysis()
        found = [Insight(**d) for d in self.db.insights()]
        return [i for i in found if kind is None or i.kind == kind]

    def aggregate(
        self,
        x: str,
        y: str = "loss",
        by: str | None = None,
        subset: str | None = None,
        bins: int = 10,
        *,
        where: Any = None,
        binning: Literal["quantile", "uniform"] = "quantile",
    ) -> pd.DataFrame:
        """Mean of ``y`` (loss, correct = accuracy, count, or any numeric column) per bin/group of ``x``,
        optionally per value of ``by``, over the rows of ``subset`` that match ``where`` (as in
        :meth:`samples`).

        Computed in DuckDB (store/aggregate.py): no row is loaded, the answer has at most
        groups x bins rows. Its columns and rules are those of
        :func:`samplescope.analysis.metrics.aggregate`, which does the same for a DataFrame.
        """
        from samplescope.analysis.metrics import MAX_BINS, MAX_GROUPS, MAX_VALUES
        from samplescope.store.aggregate import aggregate

        self._check_subset(subset)
        return aggregate(
            self.db, x, y, by, subset=subset, where=where, bins=bins, binning=binning,
            max_bins=MAX_BINS, max_groups=MAX_GROUPS, max_values=MAX_VALUES,
        )  # fmt: skip

    def metrics(self, subset: str = "validation") -> dict[str, Any]:
        """The task's metrics of one subset (``task`` names it).

        Classification: accuracy, mean loss, per-class precision/recall and the confusion
        matrix, computed in DuckDB from two GROUP BYs (no row is loaded). Regression: MAE,
        RMSE, R², residual quantiles; multi-label: per-label precision/recall/F1/average
        precision and the exact-match rate; both from the few columns they need of the
        subset's rows (samplescope/tasks).
        """
        from samplescope.analysis.metrics import metrics_from_counts

        self.require_analysis()
        self._check_subset(subset)
        task = self.task
        if task.name != "classification":
            frame = self.samples(columns=task.metric_columns(self.classes), subset=subset)
            return task.metrics(frame, self.classes)
        n = len(self.classes)
        pairs = self.db.fetch(
            'SELECT "label", "prediction", count(*) AS n FROM {source} '
            'WHERE subset = ? AND "label" >= 0 GROUP BY ALL', [subset]
        )
        bad = pairs[(pairs["label"] >= n) | (pairs["prediction"] < 0) | (pairs["prediction"] >= n)]
        if len(bad):
            raise RunError(
                f"{self.path / layout.DATABASE}: label/prediction {int(bad.iloc[0]['label'])}/"
                f"{int(bad.iloc[0]['prediction'])} is not a class index 0..{n - 1}; analyse the run again."
            )
        cm = np.zeros((n, n), np.int64)
        cm[pairs["label"].to_numpy(np.int64), pairs["prediction"].to_numpy(np.int64)] = pairs["n"].to_numpy()
        losses = self.db.fetch(
            'SELECT "label", sum("loss") AS s, count("loss") AS n FROM {source} '
            'WHERE subset = ? AND "label" >= 0 AND NOT isnan("loss") GROUP BY ALL', [subset]
        )
        loss_sum, loss_n = np.zeros(n), np.zeros(n)
        loss_sum[losses["label"].to_numpy(np.int64)] = losses["s"].to_numpy(np.float64)
        loss_n[losses["label"].to_numpy(np.int64)] = losses["n"].to_numpy(np.float64)
        return {"task": task.name, **metrics_from_counts(cm, loss_sum, loss_n)}

    # -- tags, selections and exports (store/annotations.py) -------------------

    @functools.cached_property
    def annotations(self):
        """The run's tags and saved selections (kept across re-analyses)."""
        from samplescope.store.annotations import Annotations

        return Annotations(self.path, self._n())

    def tags(self) -> pd.DataFrame:
        """Every tag with its sample count: columns ``tag``, ``count``."""
        found = self.annotations.tags()
        return pd.DataFrame({"tag": list(found), "count": [len(v) for v in found.values()]})

    def tagged(self, name: str) -> np.ndarray:
        """The sample ids carrying tag ``name``, sorted."""
        return self.annotations.tagged(name)

    def tag(self, sample_ids: Any, name: str) -> int:
        """Tag samples (``"mislabeled"``, ``"relabel:7"``, ``"exclude"``, any word); returns the tag's size."""
        return self.annotations.tag(sample_ids, name)

    def untag(self, name: str, sample_ids: Any = None) -> int:
        """Remove a tag from some samples, or from all (``sample_ids=None``); returns how many keep it."""
        return self.annotations.untag(name, sample_ids)

    def rename_tag(self, old: str, new: str) -> None:
        self.annotations.rename_tag(old, new)

    def selections(self) -> list[Any]:
        """Saved selections (name, note, created, ids), by name."""
        return self.annotations.selections()

    def selection(self, name: str) -> Any:
        return self.annotations.selection(name)

    def save_selection(self, name: str, sample_ids: Any, note: str = "", overwrite: bool = False) -> Any:
        """Save a named set of samples with a note (a lasso region, an insight, a confusion cell...)."""
        return self.annotations.save_selection(name, sample_ids, note=note, overwrite=overwrite)

    def delete_selection(self, name: str) -> None:
        self.annotations.delete_selection(name)

    def rename_selection(self, old: str, new: str) -> None:
        self.annotations.rename_selection(old, new)

    def export(
        self,
        path: str | Path,
        sample_ids: Any = None,
        *,
        tag: str | None = None,
        selection: str | None = None,
        format: Literal["csv", "parquet", "json"] | None = None,
    ) -> Path:
        """Write samples (ids, a tag or a saved selection) to CSV, Parquet or JSON (by suffix or ``format``).

        Columns: sample_id, subset, key, label (and its class name), prediction (and its
        name), loss, then the metadata columns. Written atomically.
        """
        import os
        import tempfile

        given = [x is not None for x in (sample_ids, tag, selection)]
        if sum(given) != 1:
            raise ParameterError("export() needs exactly one of sample_ids, tag= or selection=.")
        if tag is not None:
            ids = self.tagged(tag)
        elif selection is not None:
            ids = self.selection(selection).ids
        else:
            ids = self.annotations._ids(sample_ids)
        path = Path(path)
        fmt = format or path.suffix.lstrip(".").lower()
        if fmt not in ("csv", "parquet", "json"):
            raise ParameterError(f"Cannot export to {path.name!r}: name a .csv, .parquet or .json file (or format=).")
        frame = self._export_frame(np.asarray(ids, np.int64))
        if tag is not None and tag.startswith("relabel:"):  # ready for `samplescope train --relabel FILE`
            frame["new_label"] = tag.split(":", 1)[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            if fmt == "csv":
                frame.to_csv(tmp, index=False)
            elif fmt == "parquet":
                frame.to_parquet(tmp, index=False)
            else:
                frame.to_json(tmp, orient="records", indent=1, double_precision=15)
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise RunError(f"Cannot write {path} ({exc.strerror}); nothing was written.") from exc
        return path

    def _export_frame(self, ids: np.ndarray) -> pd.DataFrame:
        available = self.db.columns()
        first = [c for c in ("subset", "key", "label", "prediction", "loss") if c in available]
        columns = [*first, *[c for c in self.metadata_columns() if c not in first]]
        from samplescope.store.query import MAX_IN

        parts = [self.samples(columns=columns, where=[("sample_id", "in", ids[i : i + MAX_IN].tolist())])
                 for i in range(0, len(ids), MAX_IN)] or [self.samples(columns=columns, limit=0)]
        frame = pd.concat(parts, ignore_index=True)
        names = np.asarray([*self.classes, ""], dtype=object)
        for c in self.task.class_columns:  # class indices get their names beside them
            if c in frame.columns:
                idx = frame[c].fillna(-1).astype(np.int64).to_numpy()
                frame.insert(frame.columns.get_loc(c) + 1, f"{c}_name", names[np.where(idx >= 0, idx, -1)])
        return frame

    def close(self) -> None:
        self.db.close()


def default_target(task: Any, row: pd.Series) -> int:
    """The output a heatmap explains by default: the predicted class (classification), the one
    output (regression), the most probable label (multi-label)."""
    if task.name == "classification":
        return int(row["prediction"]) if "prediction" in row else int(row["label"])
    probs = [(float(v), int(str(k)[5:])) for k, v in row.items() if str(k).startswith("prob_") and pd.notna(v)]
    return max(probs)[1] if probs else 0


def _check_k(k: int) -> None:
    if not 1 <= int(k) <= 1000:
        raise ParameterError(f"k={k} is out of range; ask for 1 to 1000 neighbours.")


def with_channel_axis(model: Any) -> Any:
    """``model``, which takes (N, H, W), as a module taking (N, 1, H, W): attributions want a channel axis."""
    from torch import nn

    class ChannelAxis(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return self.inner(x[:, 0])  # (N, 1, H, W) -> (N, H, W)

    return ChannelAxis(model).eval()
