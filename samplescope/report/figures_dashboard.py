"""Dashboard figures: loss along a metadata column, training curves, the confusion matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator

from samplescope.analysis.metrics import trend
from samplescope.report.context import ReportContext, Section
from samplescope.report.draw import class_colors, new_figure

BINS = 10
#: plain numbers on log axes ("0.2", not "2 x 10^-1"); minor ticks labelled only at 2 and 5
PLAIN = FuncFormatter(lambda v, _: f"{v:g}")
PLAIN_MINOR = FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else "")
#: the metadata column the report plots loss against, when the integration has it
PREFERRED_COLUMN = "dist_to_gt_centroid"


# --------------------------------------------------------------------------- loss vs metadata


def trend_column(ctx: ReportContext) -> tuple[str, str] | None:
    """The column to plot loss against and why: the centroid distance, else the insight's column."""
    if PREFERRED_COLUMN in ctx.columns:
        return PREFERRED_COLUMN, "the distance from each sample to its ground-truth class centroid"
    for insight in ctx.run.insights("metadata_failure"):
        column = insight.details.get("column")
        if column in ctx.columns:
            return column, f"the metadata column named by the insight \u201c{insight.title}\u201d"
    return None


def loss_vs_metadata(
    ctx: ReportContext, column: str | None = None, why: str | None = None
) -> Section:
    """Mean loss per bin of a metadata column, overall and per class, with its Spearman trend."""
    if column is None:
        found = trend_column(ctx)
        if found is None:
            why_not = (
                f"Not drawn: the run has no {PREFERRED_COLUMN} column and no metadata_failure "
                "insight names a metadata column whose values predict the errors."
            )
            return Section("trend", "Loss against metadata", [why_not])
        column, why = found
    why = why or f"the metadata column {column}"
    overall = ctx.run.aggregate(column, y="loss", subset=ctx.subset, bins=BINS)
    if overall.attrs["kind"] == "categorical":
        return _loss_by_category(ctx, column, why, overall)
    by_class = "confusion" in ctx.task.views  # one curve per class only when there are classes
    per_class = (
        ctx.run.aggregate(column, y="loss", by="label", subset=ctx.subset, bins=BINS)
        if by_class else pd.DataFrame({"label": []})
    )
    errors = ctx.run.aggregate(column, y="correct", subset=ctx.subset, bins=BINS)
    rho = trend(overall)
    values = ctx.evaluation[[column, "loss"]].dropna()
    sample_rho = (
        float(values[column].rank().corr(values["loss"].rank()))
        if len(values) > 2
        else float("nan")
    )

    fig = new_figure(11, 4.4)
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1])
    colors = class_colors(ctx.n_classes)
    for k, part in per_class.groupby("label"):
        if int(k) < 0:
            continue
        part = part[part["count"] > 0]
        left.plot(
            part["x_mid"],
            part["mean"],
            color=colors[int(k)],
            lw=1,
            alpha=0.8,
            marker=".",
            label=ctx.class_name(k),
        )
    shown = overall[overall["count"] > 0]
    overall_name = "all classes" if by_class else "all samples"
    left.plot(shown["x_mid"], shown["mean"], color="black", lw=2.5, marker="o", label=overall_name)
    if (shown["mean"] > 0).all() and shown["mean"].max() / max(shown["mean"].min(), 1e-12) > 30:
        left.set_yscale("log")
        left.yaxis.set_major_formatter(PLAIN)
    left.set(xlabel=f"{column} (bin centre)", ylabel=f"mean loss ({ctx.subset})")
    left.set_title(
        f"mean loss vs {column}: Spearman \u03c1 = {rho:.2f} over {len(shown)} bins", fontsize=10
    )
    left.legend(fontsize=7, ncols=2, frameon=False, title="ground truth", title_fontsize=8)
    left.grid(alpha=0.3)
    err = errors[errors["count"] > 0]
    # equal-count bins have unequal widths: one bar per bin, its range as the tick label
    right.bar(np.arange(len(err)), 1 - err["mean"], color="#d62728", alpha=0.8)
    ticks = [f"{lo:.3g}\u2013{hi:.3g}" for lo, hi in zip(err["x_lo"], err["x_hi"], strict=True)]
    right.set_xticks(np.arange(len(err)), ticks, rotation=60, ha="right", fontsize=7)
    right.set(xlabel=f"{column} (bin)", ylabel=f"error rate ({ctx.subset})")
    right.set_title("error rate per bin (equal counts)", fontsize=10)
    right.grid(alpha=0.3, axis="y")
    image = ctx.save(fig, "loss_vs_metadata.png")

    first, last = shown.iloc[0], shown.iloc[-1]
    verb = "rises" if rho > 0 else "falls" if rho < 0 else "stays flat"
    text = (
        f"Mean {ctx.subset} loss over {len(shown)} equal-count bins of {column}, {why}. "
        f"It {verb} from {first['mean']:.3g} in the lowest bin ({first['x_lo']:.3g} to "
        f"{first['x_hi']:.3g}) to {last['mean']:.3g} in the highest ({last['x_lo']:.3g} to "
        f"{last['x_hi']:.3g}): Spearman \u03c1 between bin and mean loss {rho:.2f} (over the "
        f"{len(values):,} samples themselves: {sample_rho:.2f}). The error rate goes from "
        f"{1 - err.iloc[0]['mean']:.2%} to {1 - err.iloc[-1]['mean']:.2%}."
    )
    return Section("trend", f"Loss against {column}", [text], [image])


def _loss_by_category(ctx: ReportContext, column: str, why: str, overall: pd.DataFrame) -> Section:
    accuracy = ctx.run.aggregate(column, y="correct", subset=ctx.subset)
    fig = new_figure(7, 3.8)
    ax = fig.add_subplot()
    names = overall["x_value"].astype(str)
    ax.bar(names, overall["mean"], color="#4c78a8")
    ax.set(xlabel=column, ylabel=f"mean loss ({ctx.subset})")
    ax.set_title(f"mean loss per value of {column}", fontsize=10)
    image = ctx.save(fig, "loss_vs_metadata.png")
    parts = [
        f"{v} ({int(n):,} samples): mean loss {m:.3g}, error rate {1 - a:.2%}"
        for v, n, m, a in zip(
            names, overall["count"], overall["mean"], accuracy["mean"], strict=True
        )
    ]
    text = f"Mean {ctx.subset} loss per value of {column}, {why}: " + "; ".join(parts) + "."
    return Section("trend", f"Loss against {column}", [text], [image])


# --------------------------------------------------------------------------- training curves


def training_curves(ctx: ReportContext) -> Section:
    """Loss and accuracy per epoch (train and validation), and the loss along the steps."""
    history = ctx.run.history()
    epochs = history[history["kind"] == "epoch"] if "kind" in history else history
    if epochs.empty:
        why_not = "Not drawn: the run has no training history (its model was trained elsewhere)."
        return Section("training", "Training curves", [why_not])
    epochs = epochs.sort_values("epoch")
    steps = history.sort_values("step")
    fig = new_figure(13, 3.8)
    loss_ax, acc_ax, step_ax = fig.subplots(1, 3)
    for col, name, color in (("train", "train", "#1f77b4"), ("val", ctx.subset, "#ff7f0e")):
        loss_ax.plot(epochs["epoch"], epochs[f"{col}_loss"], marker="o", color=color, label=name)
        acc_ax.plot(epochs["epoch"], epochs[f"{col}_acc"], marker="o", color=color, label=name)
        step_ax.plot(steps["step"], steps[f"{col}_loss"], color=color, lw=1.2, label=name)
    score = "accuracy" if ctx.task.name == "classification" else ctx.task.score_name.split(" (")[0]
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss per epoch")
    acc_ax.set(xlabel="epoch", ylabel=score, title=f"{score} per epoch")
    step_ax.set(xlabel="optimizer step", ylabel="loss", title="loss along the steps", yscale="log")
    step_ax.yaxis.set_major_formatter(PLAIN)
    step_ax.yaxis.set_minor_formatter(PLAIN_MINOR)
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (loss_ax, acc_ax, step_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
        ax.title.set_fontsize(10)
    image = ctx.save(fig, "training.png")

    last = epochs.iloc[-1]
    best = epochs.loc[epochs["val_acc"].idxmax()]
    seconds = ctx.run.info.get("train_seconds")
    train_config = ctx.run.info.get("train_config") or {}
    shift = train_config.get("augment_shift")
    augmented = f" on images shifted by up to {shift} pixels" if shift else ""
    if augmented and (train_config.get("augment_rotate") or train_config.get("augment_scale")):
        augmented += (
            f", rotated by up to {train_config.get('augment_rotate') or 0:g} degrees"
            f" and scaled by up to {100 * (train_config.get('augment_scale') or 0):g}%"
        )
    plain_tail = 1.0 - float(train_config.get("augment_until", 1.0))
    if augmented and plain_tail > 0:
        augmented += f" (the last {100 * plain_tail:g}% of the steps on the plain images)"
    text = (
        f"{len(epochs)} epoch{'' if len(epochs) == 1 else 's'} "
        f"({int(last['step']):,} optimizer steps"
        + (f", {seconds:g} s of training" if seconds is not None else "")
        + f"). After the last epoch: train loss {last['train_loss']:.4f}, accuracy "
        f"{last['train_acc']:.2%}; {ctx.subset} loss {last['val_loss']:.4f}, accuracy "
        f"{last['val_acc']:.2%}. The best {ctx.subset} accuracy, {best['val_acc']:.2%}, came after "
        f"epoch {int(best['epoch'])}. Training loss and accuracy are means over the steps of an "
        f"epoch{augmented}, so they can trail the {ctx.subset} figures."
    )
    return Section("training", "Training curves", [text], [image])


# --------------------------------------------------------------------------- confusion matrix


def confusion_matrix(ctx: ReportContext) -> Section:
    """Counts of (ground truth, prediction) in the evaluation subset, on a log colour scale."""
    from matplotlib.colors import LogNorm

    cm = np.asarray(ctx.metrics["confusion"], dtype=np.int64)
    n = ctx.n_classes
    size = float(np.clip(0.5 * n + 2, 5, 14))
    fig = new_figure(size + 1, size)
    ax = fig.add_subplot()
    shown = np.ma.masked_equal(cm, 0)
    im = ax.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(int(cm.max()), 2)))
    if n <= 20:
        for (i, j), v in np.ndenumerate(cm):
            if v:
                dark = v > np.sqrt(max(cm.max(), 1))
                ax.text(
                    j,
                    i,
                    f"{v:,}",
                    ha="center",
                    va="center",
                    fontsize=8 if n <= 12 else 6,
                    color="white" if dark else ("#b00000" if i != j else "black"),
                )
    names = [ctx.class_name(k) for k in range(n)]
    ax.set_xticks(np.arange(n), names, rotation=90 if n > 12 else 0, fontsize=8)
    ax.set_yticks(np.arange(n), names, fontsize=8)
    ax.set(xlabel="prediction", ylabel="ground truth")
    ax.set_title(f"{ctx.subset} confusion matrix ({int(cm.sum()):,} samples)", fontsize=10)
    bar = fig.colorbar(im, ax=ax, shrink=0.8, label="samples (log scale)")
    bar.ax.yaxis.set_major_formatter(PLAIN)
    bar.ax.yaxis.set_minor_formatter(PLAIN_MINOR)
    image = ctx.save(fig, "confusion.png")

    per_class = ctx.metrics["per_class"]
    worst = per_class.loc[per_class["recall"].idxmin()]
    worst_p = per_class.loc[per_class["precision"].idxmin()]
    text = (
        f"Rows are the ground truth, columns the prediction; {int(np.trace(cm)):,} of "
        f"{int(cm.sum()):,} {ctx.subset} samples lie on the diagonal (accuracy "
        f"{ctx.metrics['accuracy']:.2%}). The lowest recall "
        f"is {ctx.class_name(worst['class'])}'s, {worst['recall']:.2%}; the lowest precision "
        f"{ctx.class_name(worst_p['class'])}'s, {worst_p['precision']:.2%}."
    )
    return Section("confusion", "Confusion matrix", [text], [image])
