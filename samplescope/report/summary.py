"""The report's opening: what the run is and how well the model does, read from the run."""

from __future__ import annotations

from collections import Counter

from samplescope.report.context import ReportContext, Section


def overview(ctx: ReportContext) -> Section:
    info = ctx.run.info
    analysis = info["analysis"]
    integ = info["integration"]
    sizes = ", ".join(f"{n:,} {s}" for s, n in info["subsets"].items())
    total = sum(info["subsets"].values())
    model = info["model"]["class"].rsplit(".", 1)[-1]
    m = ctx.metrics
    task = ctx.task
    kind = f"{len(ctx.classes)} classes" if task.name == "classification" else (
        f"{task.name}, {len(ctx.classes)} labels" if ctx.classes else f"{task.name} of {getattr(task, 'target', 'a target')}")
    identity = (
        f"Run {ctx.run.name}: the {integ['name']} integration (version {integ['version']}, "
        f"{kind}), {total:,} samples ({sizes}); model {model}, latent vectors "
        f"from layer {analysis['latent_layer']!r} ({analysis['latent_dim']} dimensions), map by "
        f"{analysis['projection'].upper()}; analysed {analysis['created']}."
    )
    if task.name == "classification":
        n_errors = int(m["count"] - round(m["accuracy"] * m["count"]))
        scores = (
            f"{ctx.subset.capitalize()} accuracy {m['accuracy']:.2%} ({n_errors:,} errors among "
            f"{m['count']:,} samples), mean loss {m['mean_loss']:.4f}."
        )
    else:
        n_errors = ctx.error_count
        rule = (info["analysis"].get("error") or {}).get("rule", "")
        scores = (
            f"{ctx.subset.capitalize()}: {_headline(task, m)} ({n_errors:,} errors among {m['count']:,} "
            f"samples; an error is {rule})."
        )
    paragraphs = [identity, scores]
    for subset in ctx.run.subsets:
        if subset in (ctx.subset, "unlabeled"):
            continue
        other = ctx.run.metrics(subset)
        if other["count"] and task.name == "classification":
            paragraphs[-1] += (
                f" {subset.capitalize()} accuracy {other['accuracy']:.2%}, "
                f"mean loss {other['mean_loss']:.4f}."
            )
        elif other["count"]:
            paragraphs[-1] += f" {subset.capitalize()}: {_headline(task, other)}."
    found = ctx.run.insights()
    kinds = Counter(i.kind.replace("_", " ") for i in found)
    by_kind = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    paragraphs.append(
        f"The insight finders reported {len(found)} finding(s)"
        + (f" ({by_kind}); the most severe are at the end of this report." if found else ".")
    )
    return Section("overview", "Overview", paragraphs)


def _headline(task, metrics) -> str:
    """'MAE 41.2, RMSE 52.8, R² 0.47': the task's first figures."""
    return ", ".join(f"{name} {value:.4g}" for name, value in task.headline(metrics))
