"""Static figures and one self-contained HTML report that retell a run's analysis.

    from samplescope.report import build_report
    build_report("runs/mnist", "/tmp/report")   # PNGs + report.html, written atomically

One module per figure family (``figures_map``, ``figures_errors``,
``figures_dashboard``, ``figures_insights``); each figure function takes a
:class:`~samplescope.report.context.ReportContext`, saves its PNGs and returns
:class:`~samplescope.report.context.Section` objects: a title, paragraphs whose
every number is read from the run, and image file names. ``html.py`` turns the
sections into ``report.html`` with the images embedded as data URIs.
"""

from __future__ import annotations

from typing import Any


def build_report(*args: Any, **kwargs: Any) -> Any:
    """Write the report of an analysed run; see :func:`samplescope.report.build.build_report`."""
    from samplescope.report.build import build_report as _build_report

    return _build_report(*args, **kwargs)


__all__ = ["build_report"]
