"""The population map: every sample at its 2-D position, and a zoom on the most confused pair."""

from __future__ import annotations

import numpy as np
import pandas as pd

from samplescope.report.context import ReportContext, Section
from samplescope.report.draw import GREY, MARK, class_colors, dot_sizes, new_figure, show_image

MAX_THUMBS = 12


def _limits(x: np.ndarray, y: np.ndarray, lo: float = 0.2, hi: float = 99.8, pad: float = 0.04):
    """Axis limits holding all but the most extreme points, padded."""
    x0, x1 = np.percentile(x, [lo, hi])
    y0, y1 = np.percentile(y, [lo, hi])
    dx, dy = max(x1 - x0, 1e-6) * pad, max(y1 - y0, 1e-6) * pad
    return (x0 - dx, x1 + dx), (y0 - dy, y1 + dy)


def _scatter_classes(ax, df: pd.DataFrame, colors: np.ndarray, smallest: float, largest: float):
    """Dots coloured by ground truth, area by loss; the highest losses are drawn last (on top)."""
    df = df.sort_values("loss", kind="stable")
    labels = df["label"].to_numpy()
    rgba = np.where(
        (labels >= 0)[:, None], colors[np.maximum(labels, 0)], np.array([[0.5, 0.5, 0.5, 1]])
    )
    ax.scatter(
        df["map_x"],
        df["map_y"],
        s=dot_sizes(df["loss"].to_numpy(), smallest, largest),
        c=rgba,
        linewidths=0,
        alpha=0.75,
        rasterized=True,
    )


def _legend(
    ax, ctx: ReportContext, colors: np.ndarray, losses: np.ndarray, smallest: float, largest: float,
    names: list[str] | None = None, title: str = "ground truth",
):
    from matplotlib.lines import Line2D

    names = names if names is not None else [ctx.class_name(k) for k in range(ctx.n_classes)]
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colors[k], markersize=6, label=name)
        for k, name in enumerate(names)
    ]
    top = float(np.nanquantile(losses, 0.99)) if len(losses) else 0.0
    if top > 0:
        for value in (top / 10, top / 2, top):
            area = dot_sizes(np.array([value, top]), smallest, largest)[0]
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="o",
                    linestyle="",
                    color=MARK,
                    markerfacecolor="none",  # hollow: no class colour (class 9 is dark grey)
                    markersize=float(np.sqrt(area)),
                    label=f"loss {value:.2g}",
                )
            )
    ax.legend(
        handles=handles,
        title=title,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=8,
        title_fontsize=9,
        ncols=1 if ctx.n_classes <= 16 else 2,
    )


def population_maps(ctx: ReportContext) -> Section:
    """One map per subset (train, validation), on shared axes."""
    df = ctx.samples
    colors = class_colors(ctx.n_classes)
    by_class = "confusion" in ctx.task.views
    names, coloured = None, "ground truth"
    if not by_class:  # no class per sample: colour by the task's errors (label 0 right, 1 wrong)
        labelled = ctx.task.labelled(ctx.task.labels_from_table(df, ctx.classes))
        codes = np.where(labelled, (~df["correct"].astype(bool)).astype(np.int64), -1)
        df = df.assign(label=codes)
        colors = np.array([[0.31, 0.47, 0.65, 1.0], [0.84, 0.15, 0.16, 1.0]])
        names, coloured = ["not an error", "error"], "error"
    xlim, ylim = _limits(df["map_x"].to_numpy(), df["map_y"].to_numpy())
    analysis = ctx.run.info["analysis"]
    images, counts = [], []
    for subset in [s for s in ("train", ctx.subset) if s in ctx.run.subsets]:
        part = df[df["subset"] == subset]
        n = len(part)  # drawn; the subset's own size when only the overview is drawn
        whole = n if ctx.drawn is None else int(ctx.run.info["subsets"].get(subset, n))
        # smaller dots for larger populations: 60,000 dots stay readable
        smallest = float(np.clip(20_000 / max(n, 1), 0.4, 6.0))
        # the highest losses stand out, without burying a large population under them
        largest = float(np.clip(30 * np.sqrt(10_000 / max(n, 1)), 10.0, 30.0))
        fig = new_figure(8.2, 6.2)
        ax = fig.add_subplot()
        _scatter_classes(ax, part, colors, smallest, largest)
        ax.set(xlim=xlim, ylim=ylim, xticks=[], yticks=[], aspect="equal")
        shown = f"{whole:,} samples" if whole == n else f"{whole:,} samples ({n:,} drawn)"
        ax.set_title(f"{subset}: {shown}, coloured by {coloured}, dot area by loss", fontsize=10)
        _legend(ax, ctx, colors, part["loss"].to_numpy(), smallest, largest, names, coloured)
        images.append(ctx.save(fig, f"map_{subset}.png"))
        counts.append(f"{whole:,} {subset}")
    text = (
        f"Each dot is one sample ({' and '.join(counts)} samples), placed by a 2-D "
        f"{analysis['projection'].upper()} projection of its {analysis['latent_dim']}-dimensional "
        f"latent vector (the input of layer {analysis['latent_layer']!r}). Samples the model sees "
        "as alike sit together; a dot's colour is its ground truth and its area grows with its "
        "loss, so errors show as large dots of one colour inside another colour's cluster."
    ) if by_class else (
        f"Each dot is one sample ({' and '.join(counts)} samples), placed by a 2-D "
        f"{analysis['projection'].upper()} projection of its {analysis['latent_dim']}-dimensional "
        f"latent vector (the input of layer {analysis['latent_layer']!r}). Samples the model sees "
        "as alike sit together; red dots are errors (" + str((analysis.get('error') or {}).get('rule', '')) +
        "), and a dot's area grows with its loss, so a red region is where the model fails."
    )
    if ctx.drawn is not None:
        text += (
            f" With {ctx.n:,} samples the maps draw the overview the web page starts from: "
            f"{len(ctx.drawn):,} samples that keep every region and class, each cell's highest "
            "losses first; zoom in on the web page to see every sample of a region."
        )
    return Section("map", "Population map", [text], images)


def confused_pair(ctx: ReportContext) -> Section | None:
    """The two classes confused most: their samples on the map, the confused ones marked."""
    pair = ctx.confused_pair
    if pair is None:
        return None
    a, b = pair.a, pair.b
    df = ctx.samples
    colors = class_colors(ctx.n_classes)
    members = df[df["label"].isin([a, b])]
    xlim, ylim = _limits(members["map_x"].to_numpy(), members["map_y"].to_numpy(), 1, 99, 0.1)
    inside = df["map_x"].between(*xlim) & df["map_y"].between(*ylim)
    # the confused samples and the two classes' sizes from the whole table (the tables may hold
    # only the drawn samples)
    pair_sql = f'("label" = {int(a)} AND "prediction" = {int(b)}) OR ("label" = {int(b)} AND "prediction" = {int(a)})'
    swapped = ctx.run.samples(where=pair_sql)
    sizes = ctx.run.db.fetch('SELECT "label", count(*) AS n FROM {source} WHERE "label" IN (?, ?) GROUP BY ALL',
                             [int(a), int(b)]).set_index("label")["n"]  # fmt: skip

    fig = new_figure(11.5, 5.6)
    left, right = fig.subfigures(1, 2, width_ratios=[1.25, 1])
    ax = left.add_subplot()
    others = df[inside & ~df["label"].isin([a, b])]
    ax.scatter(
        others["map_x"],
        others["map_y"],
        s=3,
        c=GREY,
        linewidths=0,
        rasterized=True,
        label="other classes",
    )
    for k in (a, b):
        part = members[members["label"] == k]
        ax.scatter(
            part["map_x"],
            part["map_y"],
            s=6,
            color=colors[k],
            linewidths=0,
            alpha=0.8,
            rasterized=True,
            label=f"{ctx.class_name(k)} ({int(sizes.get(k, 0)):,})",
        )
    others_name = " and ".join(s for s in ctx.run.subsets if s != ctx.subset) or "other subsets"
    train_swapped = swapped[swapped["subset"] != ctx.subset]
    eval_swapped = swapped[swapped["subset"] == ctx.subset]
    if len(train_swapped):
        ax.scatter(
            train_swapped["map_x"],
            train_swapped["map_y"],
            s=28,
            facecolors="none",
            edgecolors=MARK,
            linewidths=0.8,
            label=f"confused, {others_name} ({len(train_swapped):,})",
        )
    ax.scatter(
        eval_swapped["map_x"],
        eval_swapped["map_y"],
        s=40,
        marker="x",
        color=MARK,
        linewidths=1.2,
        label=f"confused, {ctx.subset} ({len(eval_swapped):,})",
    )
    ax.set(xlim=xlim, ylim=ylim, xticks=[], yticks=[])
    ax.set_title(f"{ctx.class_name(a)} vs {ctx.class_name(b)} on the map (zoomed)", fontsize=10)
    legend = ax.legend(loc="best", fontsize=8, framealpha=0.85)
    for handle in legend.legend_handles[:3]:  # the class dots, tiny on the map, readable here
        handle.set_sizes([30])

    shown = eval_swapped.sort_values(["loss", "sample_id"], ascending=[False, True]).head(
        MAX_THUMBS
    )
    _thumbnails(right, ctx, shown, f"confused {ctx.subset} samples, highest loss first")
    image = ctx.save(fig, "confused_pair.png")

    n_err = ctx.error_count
    text = (
        f"The model confuses {ctx.class_name(a)} and {ctx.class_name(b)} most often: in the "
        f"{ctx.subset} subset, {_swaps(pair.a_as_b, ctx.class_name(a), ctx.class_name(b))} and "
        f"{_swaps(pair.b_as_a, ctx.class_name(b), ctx.class_name(a))}: {pair.total:,} of its "
        f"{n_err:,} errors. The zoom shows both classes on the map; crosses mark the confused "
        f"{ctx.subset} samples, circles those in {others_name}."
    )
    return Section(
        "confused",
        f"Most confused pair: {ctx.class_name(a)} and {ctx.class_name(b)}",
        [text],
        [image],
    )


def _swaps(n: int, label: str, prediction: str) -> str:
    """'1 sample labelled 3 is predicted 5' / '4 samples labelled 8 are predicted 1'."""
    noun, verb = ("sample", "is") if n == 1 else ("samples", "are")
    return f"{n:,} {noun} labelled {label} {verb} predicted {prediction}"


def _thumbnails(fig, ctx: ReportContext, rows: pd.DataFrame, title: str, ncols: int = 4) -> None:
    """A grid of sample pictures titled 'label -> prediction'."""
    nrows = int(np.ceil(MAX_THUMBS / ncols))  # a fixed grid: few samples fill its top rows
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, rows.iterrows(), strict=False):
        ax.axis("on")
        label = (
            f"#{int(row['sample_id'])}: {ctx.class_name(row['label'])} \u2192 "
            f"{ctx.class_name(row['prediction'])}"
        )
        show_image(ax, ctx.image(int(row["sample_id"])), label)
    fig.suptitle(title, fontsize=10)
