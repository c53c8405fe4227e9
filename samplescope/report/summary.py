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
    n_errors = int(m["count"] - round(m["accuracy"] * m["count"]))
    identity = (
        f"Run {ctx.run.name}: the {integ['name']} integration (version {integ['version']}, "
        f"{len(ctx.classes)} classes), {total:,} samples ({sizes}); model {model}, latent vectors "
        f"from layer {analysis['latent_layer']!r} ({analysis['latent_dim']} dimensions), map by "
        f"{analysis['projection'].upper()}; analysed {analysis['created']}."
    )
    scores = (
        f"{ctx.subset.capitalize()} accuracy {m['accuracy']:.2%} ({n_errors:,} errors among "
        f"{m['count']:,} samples), mean loss {m['mean_loss']:.4f}."
    )
    paragraphs = [identity, scores]
    for subset in ctx.run.subsets:
        if subset in (ctx.subset, "unlabeled"):
            continue
        other = ctx.run.metrics(subset)
        if other["count"]:
            paragraphs[-1] += (
                f" {subset.capitalize()} accuracy {other['accuracy']:.2%}, "
                f"mean loss {other['mean_loss']:.4f}."
            )
    found = ctx.run.insights()
    kinds = Counter(i.kind.replace("_", " ") for i in found)
    by_kind = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    paragraphs.append(
        f"The insight finders reported {len(found)} finding(s)"
        + (f" ({by_kind}); the most severe are at the end of this report." if found else ".")
    )
    return Section("overview", "Overview", paragraphs)
