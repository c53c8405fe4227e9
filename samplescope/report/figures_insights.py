"""The top insights, each with thumbnails of the samples it names."""

from __future__ import annotations

from typing import Any

from samplescope.report.context import ReportContext, Section
from samplescope.report.draw import ERROR, new_figure, show_image

MAX_INSIGHTS = 6
THUMBS = 8


def pick(found: list[Any], n: int = MAX_INSIGHTS) -> list[Any]:
    """The most severe insight of each kind, then the most severe of the rest; by severity.

    One finder can report many similar findings (one per value of a metadata column);
    taking each kind's best first keeps the report from telling one story six times.
    """
    firsts: dict[str, Any] = {}
    for insight in found:  # most severe first
        firsts.setdefault(insight.kind, insight)
    chosen = list(firsts.values())[:n]
    chosen += [i for i in found if all(i is not c for c in chosen)][: n - len(chosen)]
    return sorted(chosen, key=lambda i: -i.severity)


def insights(ctx: ReportContext) -> list[Section]:
    """One section per chosen insight: its sentence and its first samples."""
    found = ctx.run.insights()
    if not found:
        return [Section("insights", "Insights", ["The insight finders reported nothing."])]
    frame = ctx.samples.set_index("sample_id")
    chosen = pick(found)
    sections = []
    for rank, insight in enumerate(chosen, start=1):
        ids = [i for i in insight.sample_ids if i in frame.index][:THUMBS]
        images = []
        if ids:
            fig = new_figure(1.35 * THUMBS, 1.75)
            axes = fig.subplots(1, THUMBS, squeeze=False)[0]
            for ax in axes:
                ax.axis("off")
            for ax, sid in zip(axes, ids, strict=False):
                row = frame.loc[sid]
                wrong = int(row["label"]) >= 0 and int(row["prediction"]) != int(row["label"])
                caption = f"#{sid} {row['subset']}\n{ctx.class_name(row['label'])}"
                caption += f" \u2192 {ctx.class_name(row['prediction'])}" if wrong else ""
                ax.axis("on")
                show_image(ax, ctx.image(sid), caption, color=ERROR if wrong else "black")
            images.append(ctx.save(fig, f"insight_{rank}.png"))
        note = (
            f"{insight.kind.replace('_', ' ')}, severity {insight.severity:.2f}; "
            f"showing {len(ids)} of its {len(insight.sample_ids):,} samples "
            "(label \u2192 prediction when wrong)."
        )
        sections.append(
            Section(
                f"insight-{rank}", f"Insight {rank}: {insight.title}", [insight.text], images, note
            )
        )
    intro = (
        f"{len(chosen)} of the {len(found)} insights: the most severe of each kind, then the most "
        "severe of the others. All of them are in the web app (samplescope serve)."
        if len(found) > len(chosen)
        else f"All {len(found)} insights, most severe first."
    )
    return [Section("insights", "Insights", [intro]), *sections]
