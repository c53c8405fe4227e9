"""The comparison page of ``samplescope report RUN_B --compare RUN_A``: what B fixed and broke.

Sections: the counts per subset (and the insights resolved, persisting and new), B's map
coloured by change, fixed and broken samples per class, the confusion-matrix difference,
and the pictures of the samples whose loss changed most (left out when the run's code is
not trusted: pictures need the integration).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from samplescope.errors import TrustError
from samplescope.report.context import ReportContext, Section
from samplescope.report.draw import GREY, GREY_IMAGE, new_figure

log = logging.getLogger(__name__)

#: the page's colours of the changes (js/compare.js uses the same)
CHANGE_COLORS = {"fixed": "#2ca02c", "broken": "#d62728", "still_wrong": "#ff7f0e", "still_right": GREY}


def sections(ctx: ReportContext, run_a: str | Path | Any) -> list[Section]:
    """The comparison of the report's run (B) with ``run_a``: a few sections."""
    from samplescope.compare import compare

    cmp = compare(run_a, ctx.run)
    out = [_summary(cmp), _map(ctx, cmp), _per_class(ctx, cmp), _confusion(ctx, cmp)]
    try:
        out.append(_pictures(ctx, cmp))
    except TrustError as exc:
        ctx.warnings.append(f"comparison pictures left out: {exc}")
    return [s for s in out if s is not None]


def _summary(cmp: Any) -> Section:
    lines = []
    for r in cmp.summary.itertuples():
        lines.append(
            f"{r.subset}: accuracy {r.accuracy_a:.2%} in {cmp.a.name} and {r.accuracy_b:.2%} in {cmp.b.name} "
            f"over {r.samples:,} matched samples; {r.fixed:,} fixed, {r.broken:,} broken, {r.still_wrong:,} still "
            f"wrong; mean loss {r.mean_loss_a:.4f} -> {r.mean_loss_b:.4f}."
        )
    if len(cmp.insights):
        counts = cmp.insights["status"].value_counts()
        lines.append("Insights: " + ", ".join(f"{int(counts.get(s, 0))} {s}" for s in ("resolved", "persists", "new"))
                     + f" ({cmp.a.name}'s findings matched to {cmp.b.name}'s by kind and overlapping samples).")
    if cmp.unmatched:
        lines.append("Not compared: " + ", ".join(f"{k} {v:,}" for k, v in cmp.unmatched.items()) + ".")
    curation = cmp.b.info.get("curation")
    if curation:
        done = []
        if curation.get("relabel"):
            done.append(f"{curation['relabel']['samples']:,} samples relabelled")
        if curation.get("exclude"):
            done.append(f"{curation['exclude'].get('train_samples_left_out', 0):,} training samples left out")
        lines.append(f"{cmp.b.name} was trained with " + " and ".join(done) + ".")
    return Section("compare", f"Compared with {cmp.a.name}", lines,
                   note="fixed: wrong in A, right in B; broken: right in A, wrong in B; samples matched by "
                   "subset and key.")  # fmt: skip


def _map(ctx: ReportContext, cmp: Any) -> Section | None:
    if "map_x" not in ctx.run.db.columns():
        return None
    pos = ctx.run.samples(columns=["map_x", "map_y"]).set_index("sample_id")
    frame = cmp.samples.join(pos, on="sample_id_b")
    fig = new_figure(8, 6.5)
    ax = fig.add_subplot()
    for status in ("still_right", "still_wrong", "fixed", "broken"):  # the changes drawn on top
        part = frame[frame["status"] == status]
        ax.scatter(part["map_x"], part["map_y"], s=4 if status == "still_right" else 10, c=CHANGE_COLORS[status],
                   label=f"{status.replace('_', ' ')} ({len(part):,})", linewidths=0)  # fmt: skip
    ax.set_axis_off()
    ax.legend(loc="best", markerscale=2, fontsize=8)
    ax.set_title(f"{cmp.b.name}'s map by change against {cmp.a.name}")
    return Section("compare-map", "Where the changes are", [
        "Each dot is a sample on the map of the newer run, coloured by what the newer model changed."],
        images=[_save(ctx, fig, "compare_map.png")])  # fmt: skip


def _per_class(ctx: ReportContext, cmp: Any) -> Section:
    table = cmp.by("label")
    fig = new_figure(8, 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["fixed"], 0.4, color=CHANGE_COLORS["fixed"], label="fixed")
    ax.bar(x + 0.2, table["broken"], 0.4, color=CHANGE_COLORS["broken"], label="broken")
    ax.set_xticks(x, [str(v) for v in table["label"]])
    ax.set_xlabel("ground truth")
    ax.set_ylabel("samples")
    ax.legend()
    worst = table.assign(net=table["fixed"] - table["broken"]).sort_values("net")
    text = [(f"Per class (all subsets): most fixed in {worst.iloc[-1]['label']} ({int(worst.iloc[-1]['fixed'])} "
            f"fixed, {int(worst.iloc[-1]['broken'])} broken); least in {worst.iloc[0]['label']} "
            f"({int(worst.iloc[0]['fixed'])} fixed, {int(worst.iloc[0]['broken'])} broken).")]  # fmt: skip
    return Section("compare-classes", "Fixed and broken per class", text,
                   images=[_save(ctx, fig, "compare_classes.png")])  # fmt: skip


def _confusion(ctx: ReportContext, cmp: Any) -> Section | None:
    subset = ctx.subset
    if not (cmp.samples["subset"] == subset).any():
        return None
    diff = cmp.confusion_change(subset)
    classes = cmp.a.classes
    fig = new_figure(5.5, 4.8)
    ax = fig.add_subplot()
    off = diff.copy()
    np.fill_diagonal(off, 0)
    lim = max(1, int(np.abs(off).max()))
    im = ax.imshow(off, cmap="RdBu_r", vmin=-lim, vmax=lim)
    for (i, j), v in np.ndenumerate(diff):
        if v:
            ax.text(j, i, f"{v:+d}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    fig.colorbar(im, ax=ax, shrink=0.8, label="B - A (off the diagonal)")
    return Section("compare-confusion", f"Confusion change ({subset})", [
        (f"{cmp.b.name}'s confusion matrix minus {cmp.a.name}'s over the matched {subset} samples: a negative "
        "number off the diagonal is a confusion the newer model makes less often.")],
        images=[_save(ctx, fig, "compare_confusion.png")])  # fmt: skip


def _pictures(ctx: ReportContext, cmp: Any, n: int = 12) -> Section | None:
    frame = cmp.samples
    rows = []
    for status, ascending in (("fixed", True), ("broken", False)):
        part = frame[frame["status"] == status].sort_values("loss_change", ascending=ascending).head(n)
        rows.append((status, part))
    if not any(len(p) for _, p in rows):
        return None
    classes = cmp.a.classes
    fig = new_figure(1.1 * n, 2.9, layout=None)
    for r, (status, part) in enumerate(rows):
        for k, s in enumerate(part.itertuples()):
            ax = fig.add_subplot(2, n, r * n + k + 1)
            image = np.asarray(ctx.run.image(int(s.sample_id_b)))
            ax.imshow(image, **(GREY_IMAGE if image.ndim == 2 else {}))
            ax.set_title(f"{classes[s.label]}: {classes[s.prediction_a]}->{classes[s.prediction_b]}", fontsize=7,
                         color=CHANGE_COLORS[status])  # fmt: skip
            ax.set_axis_off()
    return Section("compare-samples", "Most changed samples", [
        (f"Top row: the {n} fixed samples whose loss fell most; bottom row: the {n} broken ones whose loss rose most. "
        "Each title reads truth: prediction in A -> prediction in B.")],
        images=[_save(ctx, fig, "compare_samples.png")])  # fmt: skip


def _save(ctx: ReportContext, fig: Any, name: str) -> str:
    fig.savefig(ctx.out / name, dpi=ctx.dpi)
    return name
