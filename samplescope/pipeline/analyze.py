"""`samplescope analyze RUN`: run the model over every sample and find where it fails.

Inference (predictions and latent vectors in one pass), the 2-D population map,
insights (clusters, mislabels, duplicates/leakage, outliers, failure-predicting
metadata) and, optionally, Grad-CAM for every sample. The run is copied to a
temporary folder, the analysis written there, and the copy renamed into place:
an interrupted analysis leaves the run's earlier analysis intact.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from samplescope.errors import IntegrationError, RunError
from samplescope.pipeline.prefetch import prefetch
from samplescope.run import GRADCAM_FILE, HEATMAP_CACHE, LATENT_FILE, Run, open_run
from samplescope.store import RunDatabase, layout
from samplescope.store.folder import RUN_JSON, atomic_folder, write_json

log = logging.getLogger(__name__)

BATCH = 2048


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
) -> dict[str, Any]:
    """Analyse the run at ``path`` in place (atomically); returns the analysis summary.

    Analysing runs the run's integration and model code: it must be built in, trusted
    (``trust=True``, or in the trust list), or named with ``integration``; see
    :func:`samplescope.open_run`. ``device``: where the model runs (``auto`` = CUDA when
    there is one); inputs are encoded in a background thread meanwhile.
    """
    import torch

    from samplescope.analysis.inference import (
        default_latent_layer,
        prediction_columns,
        run_inference,
    )
    from samplescope.analysis.neighbors import NeighborIndex
    from samplescope.analysis.projection import Projection

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    run = open_run(path, trust=trust, integration=integration, device=device)
    run.device  # noqa: B018 - an unknown device fails before any work
    integ = _integration(run, strict)
    model = run.model()
    layer = layer or run.info.get("latent_layer") or default_latent_layer(model)
    frame = run.samples(columns=["subset", "index", "label"])
    n = len(frame)

    # -- inference: logits and latent vectors in one pass ----------------------
    bar = tqdm(total=n, desc="inference", unit="sample", disable=not progress, leave=False)
    # the next batches are encoded in a background thread while the model runs on this one
    result = run_inference(model, prefetch(_input_batches(run, integ, frame, bar)), layer=layer)
    bar.close()
    labels = frame["label"].to_numpy()
    analysis = pd.DataFrame({"sample_id": frame["sample_id"].to_numpy()})
    for name, values in prediction_columns(result.logits, labels).items():
        analysis[name] = values
    latent = np.ascontiguousarray(result.latent, dtype=np.float32)
    timings["inference"] = time.perf_counter() - t0

    # -- one neighbour engine: its kNN graph feeds the map, the insights and similar
    t = time.perf_counter()
    neighbors = NeighborIndex(random_state=seed).fit(latent)
    timings["neighbors"] = time.perf_counter() - t

    # -- population map ----------------------------------------------------
    t = time.perf_counter()
    proj = Projection(method=projection, random_state=seed) if projection else Projection(random_state=seed)
    xy = proj.fit_transform(latent, neighbors=neighbors)
    analysis["map_x"], analysis["map_y"] = xy[:, 0], xy[:, 1]
    timings["projection"] = time.perf_counter() - t

    # -- insights ------------------------------------------------------------
    t = time.perf_counter()
    previous = set((run.info.get("analysis") or {}).get("columns", [])) | set(analysis.columns)
    base = run.samples()
    samples = base.drop(columns=[c for c in base.columns if c in previous and c != "sample_id"])
    samples = samples.merge(analysis, on="sample_id")
    insights, extra = _insights(run, samples, latent, seed, progress, neighbors)
    for name, values in extra.items():
        analysis[name] = values
    timings["insights"] = time.perf_counter() - t

    # -- optional: Grad-CAM for every sample ------------------------------------
    gradcam = None
    if heatmaps == "all":
        t = time.perf_counter()
        gradcam = _all_gradcams(run, integ, frame, analysis["prediction"].to_numpy(), labels, progress)
        timings["heatmaps"] = time.perf_counter() - t

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
        "columns": [c for c in analysis.columns if c != "sample_id"],
        "heatmaps": heatmaps,
        "accuracy": {
            s: float(analysis["correct"][(frame["subset"] == s).to_numpy()].mean())
            for s in run.subsets
            if s != "unlabeled"
        },
        "insights": len(insights),
        "neighbors": neighbors.info(),
    }
    with atomic_folder(Path(path), overwrite=True, start_from=Path(path)) as tmp:
        np.save(tmp / LATENT_FILE, latent)
        neighbors.save(tmp)  # the kNN graph (and the IVF index above the exact threshold)
        if gradcam is not None:
            np.save(tmp / GRADCAM_FILE, gradcam)
        elif (tmp / GRADCAM_FILE).exists():
            (tmp / GRADCAM_FILE).unlink()  # stale: from an earlier model or analysis
        shutil.rmtree(tmp / HEATMAP_CACHE, ignore_errors=True)  # inputs may have changed
        with RunDatabase(tmp / layout.DATABASE, writable=True) as db:
            db.write_analysis(analysis)
            db.write_insights([i.to_dict() for i in insights])
        timings["write"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        summary["seconds"] = {k: round(v, 2) for k, v in timings.items()}
        info["analysis"] = summary
        write_json(tmp / RUN_JSON, info)
    log.info("analysed %s: %d samples in %.1f s", path, n, timings["total"])
    return summary


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


def _input_batches(run: Run, integ: Any, frame: pd.DataFrame, bar: Any) -> Iterator[np.ndarray]:
    """Encoded inputs in sample_id order, one batch at a time (streaming)."""
    for subset in run.subsets:
        idx = frame.loc[frame["subset"] == subset, "index"].to_numpy()
        for start in range(0, len(idx), BATCH):
            chunk = idx[start : start + BATCH]
            bar.update(len(chunk))
            yield integ.encode_inputs(subset, chunk)


def _insights(run: Run, samples: pd.DataFrame, latent: np.ndarray, seed: int, progress: bool, neighbors: Any = None):
    from samplescope.analysis.insights import InsightContext, default_finders, find_insights

    def inputs(rows: np.ndarray) -> np.ndarray:
        """Flattened model inputs for row positions (rows are sample ids), (B, P) float32."""
        return run.inputs(rows).reshape(len(rows), -1)

    base = {"sample_id", "subset", "index", "key", "label"}
    analysis_cols = {"prediction", "loss", "confidence", "margin", "correct", "map_x", "map_y"}
    metadata = [
        c for c in samples.columns if c not in base and c not in analysis_cols and not c.startswith("prob_")
    ]
    ctx = InsightContext(
        samples=samples,
        latent=latent,
        inputs=inputs,
        class_names=run.classes,
        metadata_columns=metadata,
        random_state=seed,
        neighbors=neighbors,
    )
    finders = default_finders(random_state=seed)
    found = find_insights(ctx, finders=finders, progress=progress)
    # per-sample state the finders learned becomes columns users can colour and sort by
    columns = {"LowPerformanceClusters": ("cluster_labels_", "cluster"),
               "LikelyMislabels": ("scores_", "mislabel_score"), "Outliers": ("scores_", "outlier_score")}
    extra: dict[str, np.ndarray] = {}
    for finder in finders:
        attr, column = columns.get(type(finder).__name__, (None, None))
        value = getattr(finder, attr, None) if attr else None
        if value is not None and len(value) == len(samples):
            extra[column] = np.asarray(value)
    return found, extra


def _all_gradcams(run: Run, integ: Any, frame: pd.DataFrame, preds: np.ndarray, labels: np.ndarray, progress: bool):
    """Grad-CAM of every sample for its predicted (slot 0) and true class (slot 1), float16."""
    from samplescope.analysis.attribution import gradcam_batch

    model = run.model()
    h, w = run.info["input_shape"][-2:]
    out = np.zeros((len(frame), 2, h, w), np.float16)
    bar = tqdm(total=len(frame), desc="grad-cam", unit="sample", disable=not progress, leave=False)
    layer = run.info.get("gradcam_layer")
    for subset in run.subsets:
        rows = np.flatnonzero((frame["subset"] == subset).to_numpy())
        for start in range(0, len(rows), 512):
            r = rows[start : start + 512]
            x = integ.encode_inputs(subset, frame["index"].to_numpy()[r])
            gt = np.where(labels[r] >= 0, labels[r], preds[r])
            # one forward pass serves both targets; equal targets are computed once
            out[r] = gradcam_batch(model, x, np.stack([preds[r], gt], axis=1), layer=layer)
            bar.update(len(r))
    bar.close()
    return out


def summary_text(path: str | Path) -> str:
    """A short plain-text summary of an analysed run: accuracy per subset and the top insights."""
    run = open_run(path)
    if not run.analyzed:
        raise RunError(f"Run {path} has not been analysed; run `samplescope analyze {path}`.")
    a = run.info["analysis"]
    lines = [f"run {run.name}: {len(run.samples(columns=['subset']))} samples, analysed in {a['seconds']['total']} s"]
    for subset, acc in a["accuracy"].items():
        lines.append(f"  {subset:<11} accuracy {acc:.2%}")
    top = run.insights()[:5]
    if top:
        lines.append("top insights:")
        lines += [f"  [{i.severity:.2f}] {i.text}" for i in top]
    run.close()
    return "\n".join(lines)
