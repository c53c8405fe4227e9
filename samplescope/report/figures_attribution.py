"""Attributions of a vector or tokens run for the report: signed bars, one per feature or token.

The page draws the same values (js/attribution.js): red pushes towards the
output explained, blue away from it (palette.json ``positive``/``negative``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from samplescope.errors import SamplescopeError
from samplescope.report.draw import new_figure, palette

#: features shown per bar chart: the largest |attribution| over the outputs explained
TOP = 12


def attribution_bars(ctx: Any, row: Any, targets: list[tuple[int, str]], section: Any) -> Any:
    """A Section of signed bars for sample ``row`` and each (output, name) in ``targets``."""
    sid = int(row["sample_id"])
    usable = [m for m, why in ctx.run.attribution_methods().items() if why is None]
    if not usable:
        return section("heatmaps", "Attributions", ["No attribution method applies to this run's inputs."])
    method = usable[0]
    try:
        values = np.stack([np.asarray(ctx.run.heatmap(sid, target=k, method=method)) for k, _ in targets])
        labels = ctx.run.attribution_labels(sid) or [f"#{i}" for i in range(values.shape[1])]
    except SamplescopeError as exc:
        return section("heatmaps", "Attributions", [f"No attributions for this model: {exc}"])
    kind = ctx.run.input_kind
    if kind == "tokens":  # keep the sentence order, drop padding (id 0)
        ids = np.round(ctx.run.input(sid)).astype(np.int64)
        shown = [i for i in range(values.shape[1]) if ids[i] != 0]
    else:
        shown = list(np.argsort(-np.abs(values).max(axis=0))[:TOP])
    colors = palette()
    fig = new_figure(3.2 * len(targets) + 0.6, 0.26 * len(shown) + 1.0)
    axes = fig.subplots(1, len(targets), squeeze=False, sharey=True)[0]
    y = np.arange(len(shown))[::-1]
    for ax, v, (_, name) in zip(axes, values, targets, strict=True):
        part = v[shown]
        ax.barh(y, part, color=[colors["positive"] if x >= 0 else colors["negative"] for x in part])
        ax.axvline(0, color="#888888", linewidth=0.8)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(y, [str(labels[i]) for i in shown], fontsize=7)
    image = ctx.save(fig, "heatmaps.png")
    what = "token" if kind == "tokens" else "feature"
    text = [(f"{method.replace('_', ' ')} of {ctx.subset} sample #{sid}, one value per {what}"
             f"{'' if kind == 'tokens' else f' (the {len(shown)} largest of {values.shape[1]})'}: red pushes the "
             "model towards the output named above the chart, blue away from it"
             + (", measured from an average training sample." if kind == "vector" and method == "integrated_gradients"
                else "."))]  # fmt: skip
    return section("heatmaps", f"Attributions of sample #{sid}", text, [image])

