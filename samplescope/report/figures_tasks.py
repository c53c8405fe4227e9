"""The report's task views for runs that are not classification (samplescope/tasks).

Regression: predicted against true values and the residual histogram, the error
threshold drawn on both; multi-label: per-label precision, recall, F1 and average
precision. Also the task-aware versions of the highest-loss samples, the heatmaps and
the similar samples, whose captions show values or label sets instead of class names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from samplescope.errors import SamplescopeError
from samplescope.report.context import ReportContext, Section
from samplescope.report.draw import ERROR, GREY, heatmap_cmap, new_figure, show_image

TOP_N = 12


def _fmt(v: float) -> str:
    return f"{v:.4g}" if np.isfinite(v) else "n/a"


def caption(ctx: ReportContext, row: pd.Series) -> str:
    """'true 152, predicted 98.3' / '3+7 -> 3', for thumbnails."""
    if ctx.task.name == "regression":
        return f"true {_fmt(float(row['label']))}\npred {_fmt(float(row['prediction']))}"
    truth, pred = str(row["label"]), str(row.get("prediction", ""))
    return truth if truth == pred else f"{truth} \u2192 {pred}"


# --------------------------------------------------------------------------- the task's view


def task_view(ctx: ReportContext) -> Section | None:
    if ctx.task.name == "regression":
        return _regression(ctx)
    if ctx.task.name == "multilabel":
        return _per_label(ctx)
    return None


def _regression(ctx: ReportContext) -> Section:
    m, df = ctx.metrics, ctx.evaluation
    target = getattr(ctx.task, "target", "target")
    rule = (ctx.run.info["analysis"].get("error") or {})
    t = float(rule.get("threshold") or np.nan)
    y, p = df["label"].to_numpy(np.float64), df["prediction"].to_numpy(np.float64)
    wrong = ~df["correct"].to_numpy(bool)
    fig = new_figure(11.5, 4.6)
    ax, hx = fig.subplots(1, 2, width_ratios=[1.1, 1])
    ax.scatter(y[~wrong], p[~wrong], s=14, color="#4e79a7", alpha=0.7, linewidths=0, label="within the threshold")
    ax.scatter(y[wrong], p[wrong], s=22, color=ERROR, alpha=0.85, linewidths=0, label="error")
    lo, hi = float(np.nanmin([y.min(), p.min()])), float(np.nanmax([y.max(), p.max()]))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="prediction = truth")
    if np.isfinite(t):
        for s in (-t, t):
            ax.plot([lo, hi], [lo + s, hi + s], color=GREY, lw=1, ls="--")
    ax.set(xlabel=f"true {target}", ylabel=f"predicted {target}",
           title=f"{ctx.subset}: predicted vs true ({len(df):,} samples)")  # fmt: skip
    ax.legend(fontsize=8, frameon=False)
    residual = p - y
    hx.hist(residual, bins=min(40, max(10, len(df) // 5)), color="#4e79a7", alpha=0.85)
    if np.isfinite(t):
        for s in (-t, t):
            hx.axvline(s, color=ERROR, lw=1, ls="--")
    hx.axvline(0, color="black", lw=1)
    hx.set(xlabel=f"residual (predicted - true {target})", ylabel="samples", title="residuals")
    for a in (ax, hx):
        a.grid(alpha=0.3)
        a.title.set_fontsize(10)
    image = ctx.save(fig, "regression.png")
    q = m["residual_quantiles"]
    text = [
        (f"{ctx.subset.capitalize()}: MAE {_fmt(m['mae'])}, RMSE {_fmt(m['rmse'])}, R\u00b2 {m['r2']:.3f} over "
        f"{m['count']:,} samples. Residuals (predicted - true): median {_fmt(q['0.5'])}, middle half "
        f"{_fmt(q['0.25'])} to {_fmt(q['0.75'])}, 90% between {_fmt(q['0.05'])} and {_fmt(q['0.95'])}."),
        (f"An error is {rule.get('rule', 'an absolute error above the threshold')}; dashed lines mark the "
        f"threshold. {int(wrong.sum()):,} of the {len(df):,} {ctx.subset} samples are errors."),
    ]
    return Section("task", "Predicted vs true", text, [image])


def _per_label(ctx: ReportContext) -> Section:
    m = ctx.metrics
    per = m["per_label"]
    names = per["name"].astype(str).tolist()
    fig = new_figure(max(6.0, 0.75 * len(per) + 2.5), 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(per))
    width = 0.2
    for i, (col, color) in enumerate((("precision", "#4e79a7"), ("recall", "#f28e2b"), ("f1", "#59a14f"),
                                      ("average_precision", "#b07aa1"))):  # fmt: skip
        ax.bar(x + (i - 1.5) * width, per[col].fillna(0), width, color=color, label=col.replace("_", " "))
    ax.set_xticks(x, names, fontsize=8)
    ax.set(ylim=(0, 1.05), xlabel="label", title=f"{ctx.subset}: per-label metrics ({m['count']:,} samples)")
    ax.legend(fontsize=8, frameon=False, ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.06))
    ax.grid(alpha=0.3, axis="y")
    image = ctx.save(fig, "per_label.png")
    worst = per.loc[per["f1"].fillna(-1).idxmin()]
    lines = [f"{r['name']}: precision {_fmt(r['precision'])}, recall {_fmt(r['recall'])}, F1 {_fmt(r['f1'])}, "
             f"AP {_fmt(r['average_precision'])} ({int(r['support']):,} with the label)"
             for _, r in per.iterrows()]  # fmt: skip
    text = [
        (f"{ctx.subset.capitalize()}: every label right (exact match) for {m['exact_match']:.2%} of "
        f"{m['count']:,} samples; {m['label_accuracy']:.2%} of the single label decisions are right; "
        f"micro F1 {m['micro_f1']:.3f}, macro F1 {m['macro_f1']:.3f}, mean average precision "
        f"{m['mean_average_precision']:.3f}. The weakest label is {worst['name']} (F1 {_fmt(worst['f1'])})."),
        "; ".join(lines) + ".",
    ]
    return Section("task", "Per-label metrics", text, [image])


# --------------------------------------------------------------------------- samples


def top_losses(ctx: ReportContext) -> Section | None:
    """The highest-loss evaluation samples with their truth and prediction."""
    rows = ctx.top_loss(TOP_N)
    if rows.empty:
        return None
    ncols = 6
    nrows = int(np.ceil(len(rows) / ncols))
    fig = new_figure(1.9 * ncols, 2.2 * nrows + 0.3)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, rows.iterrows(), strict=False):
        ax.axis("on")
        wrong = not bool(row["correct"])
        show_image(ax, ctx.image(int(row["sample_id"])),
                   f"#{int(row['sample_id'])} loss {row['loss']:.3g}\n{caption(ctx, row)}",
                   color=ERROR if wrong else "black")  # fmt: skip
    fig.suptitle(f"the {len(rows)} {ctx.subset} samples with the highest loss", fontsize=10)
    image = ctx.save(fig, "top_losses.png")
    n_wrong = int((~rows["correct"].astype(bool)).sum())
    what = "squared error" if ctx.task.name == "regression" else "binary cross-entropy, averaged over the labels"
    text = [
        (f"The {len(rows)} {ctx.subset} samples with the highest loss ({what}: {rows['loss'].min():.3g} to "
        f"{rows['loss'].max():.3g}; the subset's mean is {ctx.metrics['mean_loss']:.3g}); {n_wrong} of them "
        "are errors (red captions).")
    ]
    return Section("errors", "Highest-loss samples", text, [image])


def heatmaps(ctx: ReportContext) -> Section | None:
    """What the model looked at for the worst error: one map per output it is explained for."""
    row = ctx.focus
    if row is None:
        return None
    sid = int(row["sample_id"])
    usable = [m for m, why in ctx.run.attribution_methods().items() if why is None]
    if not usable:
        return Section("heatmaps", "Heatmaps", ["No attribution method applies to this run's inputs."])
    method = usable[0]
    if ctx.task.name == "regression":
        targets = [(0, f"the predicted {getattr(ctx.task, 'target', 'value')}")]
    else:
        on = [k for k in range(ctx.n_classes) if bool(row.get(f"label_{k}")) or bool(row.get(f"pred_{k}"))]
        targets = [(k, f"label {ctx.class_name(k)}") for k in (on or [0])]
    try:
        maps = [np.asarray(ctx.run.heatmap(sid, target=k, method=method)) for k, _ in targets]
    except SamplescopeError as exc:
        return Section("heatmaps", "Heatmaps", [f"No heatmaps for this model: {exc}"])
    if maps[0].ndim != 2:  # per-feature or per-token attributions: signed bars, as the page draws them
        from samplescope.report.figures_attribution import attribution_bars

        return attribution_bars(ctx, row, targets, Section)
    picture = ctx.image(sid)
    fig = new_figure(2.1 * (len(maps) + 1), 2.5)
    axes = fig.subplots(1, len(maps) + 1, squeeze=False)[0]
    show_image(axes[0], picture, f"#{sid}\n{caption(ctx, row)}", color=ERROR)
    cmap = heatmap_cmap()
    for ax, heat, (_, name) in zip(axes[1:], maps, targets, strict=True):
        show_image(ax, picture, name)
        ax.imshow(heat, cmap=cmap, alpha=0.6, extent=(-0.5, picture.shape[1] - 0.5, picture.shape[0] - 0.5, -0.5))
    image = ctx.save(fig, "heatmaps.png")
    text = [(f"{method} heatmaps of #{sid}, the worst {ctx.subset} error: where the input pushes each output "
            "shown (brighter is stronger).")]  # fmt: skip
    return Section("heatmaps", "Heatmaps", text, [image])


def similars(ctx: ReportContext) -> Section | None:
    """The training samples the model considers most like the worst error, with their labels."""
    from samplescope.report.figures_errors import nearest_training, similar_grid

    found = nearest_training(ctx)
    if found is None:
        return None
    row, sid, subset, near = found
    rows = ctx.rows(near["sample_id"].to_numpy()).reset_index()
    where = f"{subset} " if subset else ""
    image = similar_grid(
        ctx, sid, caption(ctx, row), rows, near["similarity"], lambda n: caption(ctx, n),
        lambda n: not bool(n["correct"]) if pd.notna(n.get("correct")) else False, where, row_height=1.9,
    )
    text = [(f"The {len(near)} {where}samples whose latent vectors are most similar to #{sid}, with their "
            "ground truth and prediction (red: an error).")]  # fmt: skip
    return Section("similar", f"Most similar samples to #{sid}", text, [image])
