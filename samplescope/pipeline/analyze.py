"""`samplescope analyze RUN`: run the model over every sample and find where it fails.

One streaming pass over every subset (bounded batches, encoded in a background
thread) feeds inference (predictions and latent vectors), the two pixel sketches the
duplicate finder searches (raw and, for images, aligned) and, when asked, Grad-CAM; then the 2-D population map,
insights (clusters, mislabels, duplicates/leakage, outliers, failure-predicting
metadata) and, optionally, Grad-CAM for every sample. The run is copied to a
temporary folder, the analysis written there, and the copy renamed into place:
an interrupted analysis leaves the run's earlier analysis intact.
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from samplescope.engines import with_engine_stages
from samplescope.errors import IntegrationError, RunError
from samplescope.pipeline.prefetch import prefetch
from samplescope.run import GRADCAM_FILE, HEATMAP_CACHE, LATENT_FILE, Run, open_run
from samplescope.store import RunDatabase, layout, map_index, map_queries, serving
from samplescope.store.folder import (
    RUN_JSON,
    atomic_folder,
    disk_errors,
    mapped_array,
    place_file,
    scratch_folder,
    write_json,
)

log = logging.getLogger(__name__)

BATCH = 2048  # samples per batch of the pass
GRADCAM_BATCH = 512  # inputs whose gradients are held at once
SKETCH_SAMPLE = 5000  # inputs the pixel sketch's principal axes are fitted on


@with_engine_stages  # the engine's session spans the analysis: its row stages after the pass run there
def analyze_run(
    path: str | Path,
    *,
    layer: str | None = None,
    projection: str | None = None,
    heatmaps: str = "none",
    seed: int = 0,
    strict: bool = False,
    progress: bool = True,
    trust: bool = False,
    integration: str | Path | Any | None = None,
    device: str | None = "auto",
    engine: str | Any = "embedded",
) -> dict[str, Any]:
    """Analyse the run at ``path`` in place (atomically); returns the analysis summary.

    Analysing runs the run's integration and model code: it must be built in, trusted
    (``trust=True``, or in the trust list), or named with ``integration``; see
    :func:`samplescope.open_run`. ``device``: where the model runs (``auto`` = CUDA when
    there is one); inputs are encoded in a background thread meanwhile. ``engine``: where the
    per-sample pass runs, ``"embedded"`` (this process) or ``"ray"`` / a
    :class:`samplescope.engines.RayEngine` (see docs/scale.md); the rest runs here either way.
    """
    # the latent, the kNN graph and the IVF index live memory-mapped in a scratch folder beside
    # the run while the map and the insights run; the new version links them in at the end
    with scratch_folder(Path(path)) as scratch:
        return _analyze(path, scratch, layer=layer, projection=projection, heatmaps=heatmaps, seed=seed,
                        strict=strict, progress=progress, trust=trust, integration=integration,
                        device=device, engine=engine)


def _analyze(path: str | Path, scratch: Path, *, layer: str | None, projection: str | None, heatmaps: str,
             seed: int, strict: bool, progress: bool, trust: bool, integration: str | Path | Any | None,
             device: str | None, engine: str | Any) -> dict[str, Any]:
    import torch

    from samplescope.analysis.inference import default_latent_layer, prediction_columns
    from samplescope.analysis.neighbors import NeighborIndex
    from samplescope.analysis.projection import Projection
    from samplescope.engines import get_engine

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    engine = get_engine(engine)  # Ray missing fails before any work
    run = open_run(path, trust=trust, integration=integration, device=device)
    run.device  # noqa: B018 - an unknown device fails before any work
    integ = _integration(run, strict)
    model = run.model()
    layer = layer or run.info.get("latent_layer") or default_latent_layer(model)
    task = run.task  # what the labels are, what loss and error mean (samplescope/tasks)
    frame = run.samples(columns=["subset", *task.label_table_columns(run.classes)])
    n = len(frame)
    labels = task.labels_from_table(frame, run.classes)
    sample_ids = frame["sample_id"].to_numpy()
    subset = pd.Categorical(frame["subset"], categories=list(run.subsets)).codes  # (N,) int8, not strings
    del frame

    # -- one pass: inference, the pixel sketches and (asked) Grad-CAM from each batch once
    # the same outputs, either engine
    per_sample = functools.partial(_encode_pass, scratch=scratch) if engine is None else engine.encode_pass
    logits, latent, pixels, aligned, gradcam = per_sample(
        run, integ, model, layer, _class_targets(task, labels), heatmaps, seed, progress
    )
    # the analysis columns are held once, as arrays: the finders' table and the write share them
    validation = _subset_mask(subset, run.subsets, "validation")  # where a data-driven error rule is measured
    analysis = prediction_columns(logits, labels, task, run.classes, reference=validation)
    del logits
    timings["inference"] = time.perf_counter() - t0

    # -- one neighbour engine: its kNN graph feeds the map, the insights and similar
    t = time.perf_counter()
    with disk_errors(Path(path).parent, Path(path).name):  # a full disk: the one-line error
        # the graph is searched into memory-mapped files there, and the index answers from them
        neighbors = NeighborIndex(random_state=seed).fit(latent, spill_to=scratch)
    timings["neighbors"] = time.perf_counter() - t

    # -- population map ----------------------------------------------------
    t = time.perf_counter()
    proj = Projection(method=projection or "umap", random_state=seed, verbose=progress)
    xy = proj.fit_transform(latent, neighbors=neighbors)
    analysis["map_x"], analysis["map_y"] = xy[:, 0], xy[:, 1]  # views of xy
    timings["projection"] = time.perf_counter() - t

    # -- insights ------------------------------------------------------------
    t = time.perf_counter()
    # only the columns the finders read: the base columns and the integration's metadata
    previous = set((run.info.get("analysis") or {}).get("columns", [])) | set(analysis)
    base = {"sample_id", "subset", "index", "key", "label", *task.label_table_columns(run.classes)}
    metadata = [c for c in run.db.columns() if c not in base and c not in previous and not c.startswith("prob_")]
    samples = run.samples(columns=["subset", "label", *metadata])
    for name, values in analysis.items():  # both in sample_id order; shared, not copied
        samples[name] = pd.Series(values, index=samples.index, copy=False)
    samples, class_names = task.insight_view(samples, labels, run.classes)
    insights, extra, kinds = _insights(run, samples, latent, seed, progress, neighbors, pixels, metadata,
                                       class_names, integ=integ, task_name=task.name, aligned=aligned,
                                       scratch=scratch)
    del samples  # the finders' table and their context
    analysis.update(extra)
    timings["insights"] = time.perf_counter() - t

    # -- write, atomically ------------------------------------------------------
    t = time.perf_counter()
    info = dict(run.info)
    run.close()
    del torch
    summary = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "latent_layer": layer,
        "latent_dim": int(latent.shape[1]),
        "projection": proj.method,
        "seed": seed,
        "columns": list(analysis),
        "heatmaps": heatmaps,
        "accuracy": {
            s: float(pd.Series(analysis["correct"][_subset_mask(subset, run.subsets, s)]).mean())
            for s in run.subsets
            if s != "unlabeled"
        },
        "task": task.to_dict(),
        "error": task.error_rule(),
        "insights": len(insights),
        "metadata_kinds": kinds["metadata_kinds"],  # how finders, the page and the report read each column
        "label_functions": kinds["label_functions"],  # columns fixed by the label: they explain nothing
        "neighbors": neighbors.info(),
        "engine": {"name": "embedded"} if engine is None else engine.describe(),
    }
    with atomic_folder(Path(path), overwrite=True, start_from=Path(path)) as tmp:
        _keep(latent, scratch, tmp / LATENT_FILE)
        neighbors.save(tmp)  # the kNN graph (and the IVF index above the exact threshold)
        if gradcam is not None:
            _keep(gradcam, scratch, tmp / GRADCAM_FILE)
        elif (tmp / GRADCAM_FILE).exists():
            (tmp / GRADCAM_FILE).unlink()  # stale: from an earlier model or analysis
        shutil.rmtree(tmp / HEATMAP_CACHE, ignore_errors=True)  # inputs may have changed
        with RunDatabase(tmp / layout.DATABASE, writable=True) as db:
            db.write_analysis(pd.DataFrame({"sample_id": sample_ids, **analysis}, copy=False))  # no copy
            db.write_insights([i.to_dict() for i in insights])
            # a large run's map overview, made once here (with the server's defaults) rather than by every serve
            summary["map_overview"] = map_queries.save_overview(
                db, tmp, n, task.map_group_sql, map_queries.FULL_MAX, map_queries.OVERVIEW_POINTS)
            # the distinct values per column that the server's limits ask for (1 s of its start at 10M)
            summary["distinct_counts"] = _distinct_counts(db)
            # ... and its map index, which the server's viewports read rather than build
            summary["map_index"] = map_index.save_index(db, tmp, n, map_queries.FULL_MAX)
            if summary["map_index"] is not None:  # ... with the columns every viewport carries, coded
                summary["map_index"]["columns"] = _save_map_columns(db, tmp, run.classes, task, kinds["metadata_kinds"])
        timings["write"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        summary["seconds"] = {k: round(v, 2) for k, v in timings.items()}
        info["analysis"] = summary
        write_json(tmp / RUN_JSON, info)
    log.info("analysed %s: %d samples in %.1f s", path, n, timings["total"])
    return summary


def _distinct_counts(db: RunDatabase) -> dict:
    """What run.json records of the table's distinct values (store/serving.saved_distinct_counts)."""
    from samplescope.server.limits import DISTINCT_EXACT_BELOW

    counts = serving.distinct_counts(db, list(db.columns()), exact_below=DISTINCT_EXACT_BELOW)
    return {"exact_below": DISTINCT_EXACT_BELOW, "counts": counts}


def _save_map_columns(db: RunDatabase, tmp: Path, classes: list[str], task: Any, declared: dict) -> dict:
    """Save the MAP_COLUMNS coded as the server codes them (server/coding.py) beside the map
    index; what run.json records of them. One column at a time: at 10M a column read whole
    holds 80 MB, its codes 10 to 40 MB."""
    from samplescope.server.coding import ColumnCoder

    subsets = [str(s) for s in serving.subset_summary(db)["subset"]]  # the server's order
    coder = ColumnCoder(db, classes, task, declared, subsets)
    entries = {}
    for name in coder.map_columns:
        values, entries[name] = coder.whole(name)
        map_index.save_column(tmp / layout.MAP_INDEX, name, values)
    return entries


def _subset_mask(codes: np.ndarray, subsets: list[str], name: str) -> np.ndarray:
    """(N,) bool: the rows of subset ``name`` (``codes`` index ``subsets``; none when it is absent)."""
    return codes == subsets.index(name) if name in subsets else np.zeros(len(codes), bool)


def _class_targets(task: Any, labels: np.ndarray) -> np.ndarray:
    """Class indices for Grad-CAM's "true class" slot: the labels under classification; other
    tasks have none (-1: the predicted output stands in)."""
    return labels if task.name == "classification" else np.full(len(labels), -1, np.int64)


def _integration(run: Run, strict: bool):
    import warnings

    if strict and run.integration_changed():  # refuse before running any of it
        raise IntegrationError(
            f"Integration {run.code.integration_source} changed since run {run.name} was made (hash mismatch); "
            "nothing of it was run. Refusing because of --strict; retrain, or drop --strict."
        )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        integ = run.integration()
    for w in caught:
        if strict:
            raise IntegrationError(f"{w.message} Refusing because of --strict; retrain, or drop --strict.")
        log.warning("warning: %s", w.message)
    return integ


def _encode_pass(run: Run, integ: Any, model: Any, layer: str, labels: np.ndarray, heatmaps: str, seed: int,
                 progress: bool, scratch: Path | None = None):
    """Every sample encoded once, in bounded batches: logits (N, C), latent (N, D), the pixel
    sketch, the aligned sketch (image inputs; else None) and, with ``heatmaps="all"``, Grad-CAM
    (N, 2, H, W) float16 for the predicted and the true class. Besides those outputs the pass
    holds a few batches, whatever N. With ``scratch`` the logits, the latent and Grad-CAM are
    memory-mapped .npy files there."""
    from samplescope.analysis.inference import run_inference
    from samplescope.pipeline.encode import fit_sketches, input_batches

    sizes = {s: int(v) for s, v in run.info["subsets"].items()}
    n = len(labels)
    # the sketches' axes come from a seeded sample (a constant 5,000 inputs, not N)
    sketch, aligned_sketch = fit_sketches(integ, sizes, SKETCH_SAMPLE, seed, run.info.get("input_shape"))
    with disk_errors(Path(run.path).parent, Path(run.path).name):  # files allocated now: a full disk says so
        pixels = sketch.allocate(n, scratch)  # memory-mapped there, like the latent
        aligned = aligned_sketch.allocate(n, scratch) if aligned_sketch is not None else None

    def batches() -> Iterator[tuple[int, np.ndarray]]:
        for start, _subset, _idx, x in input_batches(integ, sizes, BATCH):
            sketch.transform_into(pixels, start, x)  # in the prefetch thread, beside the model
            if aligned_sketch is not None:  # the duplicate finder's shift-tolerant features
                aligned_sketch.transform_into(aligned, start, x)
            yield start, x

    def array(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An (N, ...) output: memory-mapped in ``scratch`` (allocated now: a full disk says so),
        else in memory; zeros either way."""
        if scratch is None:
            return np.zeros(shape, dtype)
        with disk_errors(Path(run.path).parent, Path(run.path).name):
            return mapped_array(scratch / name, shape, dtype)

    logits = latent = gradcam = None
    if heatmaps == "all":  # (N, 2, H, W) float16: 31 GB for 10M MNIST digits, so on disk
        h, w = run.info["input_shape"][-2:]
        gradcam = array(GRADCAM_FILE, (n, 2, h, w), np.float16)
    bar = tqdm(total=n, desc="inference", unit="sample", disable=not progress, leave=False)
    for start, x in prefetch(batches()):  # the next batches are encoded while the model runs
        result = run_inference(model, [x], layer=layer)
        stop = start + len(x)
        if logits is None:  # (N, C) and (N, D): with many classes the logits outgrow the latent
            logits = array(layout.SCRATCH_LOGITS, (n, result.logits.shape[1]), np.float32)
            latent = array(LATENT_FILE, (n, result.latent.shape[1]), np.float32)
        logits[start:stop], latent[start:stop] = result.logits, result.latent
        if gradcam is not None:
            _gradcams_into(gradcam, run, model, x, start, result.logits.argmax(1), labels[start:stop])
        bar.update(len(x))
    bar.close()
    if logits is None:
        raise RunError(f"Run {run.path} has no samples to analyse; train it on a non-empty integration.")
    return logits, latent, pixels, aligned, gradcam


def _keep(array: np.ndarray, scratch: Path | None, target: Path) -> None:
    """Put an output of the pass in the run folder being written: a memory-mapped file of the
    scratch folder by a hard link (not written twice), any other array by ``np.save``."""
    if scratch is not None and isinstance(array, np.memmap) and Path(str(array.filename)).parent == scratch:
        array.flush()
        place_file(Path(str(array.filename)), target)
    else:
        np.save(target, array)


def _gradcams_into(out: np.ndarray, run: Run, model: Any, x: np.ndarray, start: int, preds: np.ndarray,
                   labels: np.ndarray) -> None:
    """Grad-CAM of one batch for its predicted (slot 0) and true class (slot 1), into ``out``."""
    from samplescope.analysis.attribution import gradcam_batch

    layer = run.info.get("gradcam_layer")
    if x.ndim == 3:  # a brought model taking grey (N, H, W) images: explained as (N, 1, H, W), as run.heatmap does
        from samplescope.run import with_channel_axis

        model, layer, x = with_channel_axis(model), f"inner.{layer}" if layer else None, x[:, None]
    gt = np.where(labels >= 0, labels, preds)
    for s in range(0, len(x), GRADCAM_BATCH):  # gradients of 512 inputs at a time
        r = slice(s, s + GRADCAM_BATCH)
        # one forward pass serves both targets; equal targets are computed once
        out[start + s : start + s + len(x[r])] = gradcam_batch(
            model, x[r], np.stack([preds[r], gt[r]], axis=1), layer=layer
        )


def _insights(run: Run, samples: pd.DataFrame, latent: np.ndarray, seed: int, progress: bool, neighbors: Any,
              pixels: Any, metadata: list[str], class_names: list[str], integ: Any = None,
              task_name: str = "classification", aligned: Any = None, scratch: Path | None = None):
    from samplescope.analysis.insights import InsightContext, default_finders, find_insights
    from samplescope.analysis.insights.kinds import declared_column_kinds

    try:  # declared @metadata(kind=...), expanded to the columns each function returns
        declared = declared_column_kinds(integ) if integ is not None else {}
    except Exception as exc:  # noqa: BLE001 - a failing integration was reported by the pass already
        log.warning("metadata kinds: %s; inferring them", exc)
        declared = {}

    def inputs(rows: np.ndarray) -> np.ndarray:
        """Flattened model inputs for row positions (rows are sample ids), (B, P) float32: only the
        duplicate finder's candidate pairs are fetched (the sketch of every input came from the pass)."""
        return run.inputs(rows).reshape(len(rows), -1)

    ctx = InsightContext(
        samples=samples,
        latent=latent,
        inputs=inputs,
        class_names=class_names,
        metadata_columns=metadata,
        random_state=seed,
        neighbors=neighbors,
        pixel_features=pixels,
        aligned_features=aligned,  # the shift-tolerant sketch, from the same pass
        metadata_kinds={c: k for c, k in declared.items() if c in metadata},
        task=task_name,
        input_shape=tuple(run.info.get("input_shape") or ()) or None,
        scratch=scratch,  # the neighbours every finder reads are files there
    )
    finders = default_finders(random_state=seed)
    found = find_insights(ctx, finders=finders, progress=progress)
    # per-sample state the finders learned becomes columns users can colour and sort by
    columns = {"LowPerformanceClusters": ("cluster_labels_", "cluster"),
               "LikelyMislabels": ("scores_", "mislabel_score"), "Outliers": ("scores_", "outlier_score"),
               "Duplicates": [("duplicate_of_", "duplicate_of"), ("leaks_from_", "leaks_from")]}
    extra: dict[str, np.ndarray] = {}
    for finder in finders:
        wanted = columns.get(type(finder).__name__, [])
        for attr, column in wanted if isinstance(wanted, list) else [wanted]:
            value = getattr(finder, attr, None)
            if value is not None and len(value) == len(samples):
                extra[column] = np.asarray(value)
    kinds = {"metadata_kinds": dict(ctx.metadata_kinds), "label_functions": list(ctx.label_functions or [])}
    return found, extra, kinds


def summary_text(path: str | Path) -> str:
    """A short plain-text summary of an analysed run: accuracy per subset and the top insights."""
    run = open_run(path)
    if not run.analyzed:
        raise RunError(f"Run {path} has not been analysed; run `samplescope analyze {path}`.")
    a = run.info["analysis"]
    lines = [f"run {run.name}: {len(run.samples(columns=['subset']))} samples, analysed in {a['seconds']['total']} s"]
    task = run.task
    for subset, acc in a["accuracy"].items():
        if task.name == "classification":
            lines.append(f"  {subset:<11} accuracy {acc:.2%}")
        else:  # the task's own figures, and the share that is not an error under its rule
            figures = ", ".join(f"{k} {v:.4g}" for k, v in task.headline(run.metrics(subset)))
            lines.append(f"  {subset:<11} {figures}; {1 - acc:.1%} errors")
    if task.name != "classification" and a.get("error"):
        lines.append(f"  an error: {a['error']['rule']}")
    top = run.insights()[:5]
    if top:
        lines.append("top insights:")
        lines += [f"  [{i.severity:.2f}] {i.text}" for i in top]
    run.close()
    return "\n".join(lines)
