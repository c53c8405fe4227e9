"""The top insights, each with thumbnails of the samples it names."""

from __future__ import annotations

from typing import Any

from samplescope.analysis.insights.base import severity_band
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


def todo(insight: Any) -> list[str]:
    """What the insight says to do and its population test, as paragraphs."""
    act = (insight.details or {}).get("action")
    if not act:
        return []
    out = [f"What to do: {act['text']}"]
    test = act.get("test")
    if test:
        out.append(
            f"Population test (samplescope test --suggest): {_population(test)}: "
            f"{test['metric'].replace('_', ' ')} {test['op']} {test['threshold']:.4g}."
        )
    return out


def _population(test: dict[str, Any]) -> str:
    parts = [test["subset"]] if test.get("subset") else []
    if test.get("classes"):
        parts.append("class " + ", ".join(map(str, test["classes"])))
    for column, cond in (test.get("where") or {}).items():
        if isinstance(cond, dict):
            parts += [f"{column} >= {cond['min']:.4g}"] if cond.get("min") is not None else []
            parts += [f"{column} <= {cond['max']:.4g}"] if cond.get("max") is not None else []
        else:
            parts.append(f"{column} = {cond}")
    if "cluster" in test:
        parts.append(f"cluster {test['cluster']}")
    return ", ".join(parts) or "all samples"


def insights(ctx: ReportContext) -> list[Section]:
    """One section per chosen insight: its sentence and its first samples."""
    found = ctx.run.insights()
    if not found:
        return [Section("insights", "Insights", ["The insight finders reported nothing."])]
    chosen = pick(found)
    sections = []
    for rank, insight in enumerate(chosen, start=1):
        frame = ctx.rows(insight.sample_ids[: THUMBS * 4])  # from the whole table: ids not in the run left out
        ids = list(frame.index[:THUMBS])
        images = []
        if ids:
            fig = new_figure(1.35 * THUMBS, 1.75)
            axes = fig.subplots(1, THUMBS, squeeze=False)[0]
            for ax in axes:
                ax.axis("off")
            for ax, sid in zip(axes, ids, strict=False):
                row = frame.loc[sid]
                if ctx.task.name == "classification":
                    wrong = int(row["label"]) >= 0 and int(row["prediction"]) != int(row["label"])
                    caption = f"#{sid} {row['subset']}\n{ctx.class_name(row['label'])}"
                    caption += f" \u2192 {ctx.class_name(row['prediction'])}" if wrong else ""
                else:  # a value or a label set (samplescope/tasks), wrong by the task's rule
                    from samplescope.report.figures_tasks import caption as task_caption

                    wrong = "correct" in row and not bool(row["correct"])
                    caption = f"#{sid} {row['subset']}\n{task_caption(ctx, row)}"
                ax.axis("on")
                show_image(ax, ctx.image(sid), caption, color=ERROR if wrong else "black")
            images.append(ctx.save(fig, f"insight_{rank}.png"))
        note = (
            f"{insight.kind.replace('_', ' ')}, severity {insight.severity:.2f} "
            f"({severity_band(insight.severity)}); "
            f"showing {len(ids)} of its {len(insight.sample_ids):,} samples "
            "(label \u2192 prediction when wrong)."
        )
        sections.append(
            Section(
                f"insight-{rank}", f"Insight {rank}: {insight.title}", [insight.text, *todo(insight)],
                images, note,
            )
        )
    intro = (
        f"{len(chosen)} of the {len(found)} insights: the most severe of each kind, then the most "
        "severe of the others. All of them are in the web app (samplescope serve)."
        if len(found) > len(chosen)
        else f"All {len(found)} insights, most severe first."
    )
    return [Section("insights", "Insights", [intro]), *sections]
