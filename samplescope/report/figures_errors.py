"""Error analysis: the highest-loss samples, Grad-CAM per class, what the model finds similar."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from samplescope.errors import SamplescopeError
from samplescope.report.context import ReportContext, Section
from samplescope.report.draw import ERROR, class_colors, heatmap_cmap, new_figure, show_image

TOP_N = 8
SIMILAR_K = 15


def _title(ctx: ReportContext, row: pd.Series) -> str:
    return (
        f"#{int(row['sample_id'])}  truth {ctx.class_name(row['label'])}, "
        f"predicted {ctx.class_name(row['prediction'])}, loss {row['loss']:.2f}"
    )


def _bars(ax, ctx: ReportContext, values: np.ndarray, row: pd.Series, xlabel: str) -> None:
    """One bar per class; the ground truth green-edged, the prediction red when it is wrong."""
    colors = np.array(["#9aa5b1"] * ctx.n_classes, dtype=object)
    colors[int(row["prediction"])] = ERROR if not bool(row["correct"]) else "#2ca02c"
    colors[int(row["label"])] = "#2ca02c"
    ax.bar(np.arange(ctx.n_classes), values, color=list(colors), width=0.75)
    ax.set_xticks(
        np.arange(ctx.n_classes),
        [ctx.class_name(k) for k in range(ctx.n_classes)],
        fontsize=7,
        rotation=90 if ctx.n_classes > 12 else 0,
    )
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel(xlabel, fontsize=8, labelpad=1)
    ax.spines[["top", "right"]].set_visible(False)


def top_losses(ctx: ReportContext) -> Section | None:
    """The highest-loss evaluation samples: picture, probabilities, distances to class centroids."""
    rows = ctx.top_loss(TOP_N)
    if rows.empty:
        return None
    dist_cols = ctx.centroid_columns
    prob_cols = [f"prob_{k}" for k in range(ctx.n_classes)]
    ncols = 3 if dist_cols else 2
    text = ctx.run.input_kind != "image"  # a feature profile or a text: drawn larger, to be read
    fig = new_figure(3.2 * ncols + 0.6 + (1.2 if text else 0), (2.4 if text else 1.55) * len(rows) + 0.4)
    grid = fig.add_gridspec(len(rows), ncols, width_ratios=[1.3 if text else 0.55, 1.6, 1.6][:ncols])
    for i, (_, row) in enumerate(rows.iterrows()):
        show_image(fig.add_subplot(grid[i, 0]), ctx.image(int(row["sample_id"])))
        ax = fig.add_subplot(grid[i, 1])
        _bars(ax, ctx, row[prob_cols].to_numpy(np.float64), row, "class probability")
        ax.set_ylim(0, 1)
        ax.set_title(_title(ctx, row), fontsize=8, loc="left")
        if dist_cols:
            ax = fig.add_subplot(grid[i, 2])
            _bars(ax, ctx, row[dist_cols].to_numpy(np.float64), row, "distance to class centroid")
    image = ctx.save(fig, "top_losses.png")

    n_wrong = int((~rows["correct"].astype(bool)).sum())
    text = [
        (
            f"The {len(rows)} {ctx.subset} samples with the highest loss "
            f"({rows['loss'].min():.2f} to {rows['loss'].max():.2f}; the subset's mean loss is "
            f"{ctx.metrics['mean_loss']:.3f}); {n_wrong} of them are misclassified. Bars: green is "
            "the ground truth, red a wrong prediction."
        )
    ]
    if dist_cols:
        nearer = int((rows[dist_cols].to_numpy().argmin(axis=1) != rows["label"].to_numpy()).sum())
        text.append(
            "Right: the sample's distance to every class centroid (from the integration's "
            f"metadata). {nearer} of the {len(rows)} are nearer another class's centroid than "
            "their own."
        )
    else:
        text.append(
            "The integration computes no dist_to_centroid_k columns, so centroid distances are "
            "not shown."
        )
    return Section("errors", "Highest-loss samples", text, [image])


def _overlay(heat: np.ndarray, cmap) -> np.ndarray:
    """RGBA heatmap whose opacity grows with the value, as the page draws it (server/encoding.py):
    no evidence leaves the picture as it is."""
    v = np.clip(np.nan_to_num(heat), 0.0, 1.0)
    rgba = cmap(v)
    rgba[..., 3] = v**1.5 * 225 / 255
    return rgba


def heatmaps(ctx: ReportContext) -> Section | None:
    """Grad-CAM of the worst error for every class, on one colour scale, next to the input."""
    row = ctx.focus
    if row is None:
        return None
    sid = int(row["sample_id"])
    if ctx.run.input_kind != "image":  # vectors, tokens: signed bars per feature or token
        from samplescope.report.figures_attribution import attribution_bars

        label, pred = int(row["label"]), int(row["prediction"])
        targets = [(pred, f"predicted {ctx.class_name(pred)}")]
        if label != pred:
            targets.append((label, f"truth {ctx.class_name(label)}"))
        return attribution_bars(ctx, row, targets, Section)
    try:
        maps = np.stack(
            [ctx.run.heatmap(sid, target=k, method="gradcam") for k in range(ctx.n_classes)]
        )  # (C, H, W)
    except SamplescopeError as exc:  # e.g. a model without a conv layer has no Grad-CAM
        return Section("heatmaps", "Heatmaps", [f"No Grad-CAM heatmaps for this model: {exc}"])
    picture = ctx.image(sid)
    vmax = float(maps.max()) or 1.0
    ncols = min(ctx.n_classes + 1, 6)
    nrows = int(np.ceil((ctx.n_classes + 1) / ncols))
    fig = new_figure(1.9 * ncols, 2.05 * nrows + 0.3)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    show_image(axes.flat[0], picture, "input")
    axes.flat[0].axis("on")
    label, pred = int(row["label"]), int(row["prediction"])
    cmap = heatmap_cmap()  # the page's heatmap scale
    extent = (-0.5, picture.shape[1] - 0.5, picture.shape[0] - 0.5, -0.5)
    for k in range(ctx.n_classes):
        ax = axes.flat[k + 1]
        ax.axis("on")
        show_image(ax, picture)
        ax.imshow(_overlay(maps[k] / vmax, cmap), extent=extent, interpolation="bilinear")
        tag = " (truth)" if k == label else " (predicted)" if k == pred else ""
        color = "#2ca02c" if k == label else ERROR if k == pred else "black"
        ax.set_title(
            f"{ctx.class_name(k)}{tag}  p={row[f'prob_{k}']:.2f}", fontsize=8, color=color, pad=2
        )
    scale = ScalarMappable(Normalize(0, vmax), cmap)
    fig.colorbar(scale, ax=axes.ravel().tolist(), shrink=0.6, label="Grad-CAM (shared scale)")
    fig.suptitle(_title(ctx, row), fontsize=10)
    image = ctx.save(fig, "heatmaps.png")

    peaks = maps.reshape(len(maps), -1).max(axis=1)
    strongest = int(peaks.argmax())
    layer = ctx.run.info.get("gradcam_layer") or "the last Conv2d"
    text = (
        f"Grad-CAM of {ctx.subset} sample #{sid} (ground truth {ctx.class_name(label)}, predicted "
        f"{ctx.class_name(pred)} with probability {row['confidence']:.2f}) for each class: where "
        f"the last convolutional layer ({layer}) finds evidence for that class, on one colour "
        f"scale. The strongest evidence is for {ctx.class_name(strongest)} (peak "
        f"{peaks[strongest]:.3g}); for the ground truth the peak is {peaks[label]:.3g}."
    )
    return Section("heatmaps", f"Heatmaps of sample #{sid}", [text], [image])


def nearest_training(ctx: ReportContext) -> tuple[pd.Series, int, str | None, pd.DataFrame] | None:
    """The worst error (its row and id), the subset searched and its ``SIMILAR_K`` most similar samples."""
    row = ctx.focus
    if row is None:
        return None
    sid = int(row["sample_id"])
    subset = "train" if "train" in ctx.run.subsets else None
    return row, sid, subset, ctx.run.similar(sid, k=SIMILAR_K, subset=subset)


def similar_grid(
    ctx: ReportContext,
    sid: int,
    query_caption: str,
    neighbours: pd.DataFrame,
    similarity: pd.Series,
    caption_of: Callable[[pd.Series], str],
    wrong_of: Callable[[pd.Series], bool],
    where: str,
    frame_of: Callable[[pd.Series], Any] | None = None,
    row_height: float = 1.65,
) -> str:
    """The query and its neighbours in rows of eight, errors captioned in red, saved as similar.png.

    ``neighbours`` are their table rows (``sample_id`` and what the callables read), in the
    order of ``similarity``; ``frame_of`` gives each neighbour's frame colour (none: no frame)."""
    ncols = 8
    nrows = int(np.ceil((len(neighbours) + 1) / ncols))
    fig = new_figure(1.45 * ncols, row_height * nrows + 0.3)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].axis("on")
    show_image(axes.flat[0], ctx.image(sid), f"query #{sid}\n{query_caption}", color=ERROR)
    for ax, (_, n), sim in zip(axes.flat[1:], neighbours.iterrows(), similarity, strict=False):
        ax.axis("on")
        wrong = wrong_of(n)
        show_image(ax, ctx.image(int(n["sample_id"])), f"{caption_of(n)}\nsim {sim:.3f}",
                   color=ERROR if wrong else "black")  # fmt: skip
        if frame_of is not None:
            for spine in ax.spines.values():
                spine.set_color(frame_of(n))
                spine.set_linewidth(2.5)
    fig.suptitle(f"the {len(neighbours)} most similar {where}samples of #{sid} (cosine similarity of latents)",
                 fontsize=10)  # fmt: skip
    return ctx.save(fig, "similar.png")


def similars(ctx: ReportContext) -> Section | None:
    """The training samples the model considers most like the worst error."""
    found = nearest_training(ctx)
    if found is None:
        return None
    row, sid, subset, near = found
    colors = class_colors(ctx.n_classes)

    def wrong(n: pd.Series) -> bool:
        return "prediction" in n and int(n["prediction"]) != int(n["label"])

    def caption(n: pd.Series) -> str:
        return f"{ctx.class_name(n['label'])}" + (f" \u2192 {ctx.class_name(n['prediction'])}" if wrong(n) else "")

    where = f"{subset} " if subset else ""
    image = similar_grid(
        ctx, sid, f"{ctx.class_name(row['label'])} \u2192 {ctx.class_name(row['prediction'])}", near,
        near["similarity"], caption, wrong, where, frame_of=lambda n: colors[int(n["label"])],
    )

    labels = near["label"].to_numpy()
    n_pred = int((labels == int(row["prediction"])).sum())
    n_true = int((labels == int(row["label"])).sum())
    text = (
        f"The {len(near)} {where}samples whose latent vectors are most similar to #{sid} (exact "
        f"cosine search, similarity {near['similarity'].min():.3f} to "
        f"{near['similarity'].max():.3f}): {n_pred} carry the predicted class "
        f"{ctx.class_name(row['prediction'])} and {n_true} the ground truth "
        f"{ctx.class_name(row['label'])}. The frame colour is each neighbour's ground truth."
    )
    return Section("similar", f"Most similar samples to #{sid}", [text], [image])
