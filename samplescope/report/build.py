"""`samplescope report RUN`: PNG figures and one self-contained report.html.

The report is drawn into a temporary sibling of the output folder and renamed
into place at the end (:func:`samplescope.store.folder.atomic_folder`), so a
failure leaves the previous report as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from samplescope.errors import PictureError, RunError, TrustError
from samplescope.report import (
    figures_dashboard,
    figures_errors,
    figures_insights,
    figures_map,
    figures_tasks,
    summary,
)
from samplescope.report.context import ReportContext, Section
from samplescope.report.html import render
from samplescope.run import open_run
from samplescope.store.folder import atomic_folder, is_run

log = logging.getLogger(__name__)

REPORT_HTML = "report.html"

#: the report's parts, in reading order; each returns a Section, a list of them, or None (skipped)
FIGURES: list[Callable[[ReportContext], Section | list[Section] | None]] = [
    summary.overview,
    figures_map.population_maps,
    figures_map.confused_pair,
    figures_errors.top_losses,
    figures_errors.heatmaps,
    figures_errors.similars,
    figures_dashboard.loss_vs_metadata,
    figures_dashboard.training_curves,
    figures_dashboard.confusion_matrix,
    figures_insights.insights,
]

#: the same for a task without one class per sample (regression, multi-label): the task's own
#: view (predicted vs true, per-label metrics) in place of the confusion figures
TASK_FIGURES: list[Callable[[ReportContext], Section | list[Section] | None]] = [
    summary.overview,
    figures_map.population_maps,
    figures_tasks.task_view,
    figures_tasks.top_losses,
    figures_tasks.heatmaps,
    figures_tasks.similars,
    figures_dashboard.loss_vs_metadata,
    figures_dashboard.training_curves,
    figures_insights.insights,
]


def figures_for(task: Any) -> list[Callable[[ReportContext], Section | list[Section] | None]]:
    """The report's parts for a task: every view the task names, in reading order."""
    return FIGURES if "confusion" in task.views else TASK_FIGURES


def build_report(
    run_path: str | Path,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    trust: bool = False,
    integration: str | Path | None = None,
    compare: str | Path | None = None,
) -> Path:
    """Write the report of the analysed run at ``run_path`` into ``out`` (default ``RUN/report``).

    Returns the report folder; ``report.html`` in it opens offline (images are embedded).
    For a run whose code is not trusted (see :func:`samplescope.open_run`) the figures
    that need sample images are left out and the report says so.
    """
    started = time.perf_counter()
    run = open_run(run_path, trust=trust, integration=integration)
    try:
        run.require_analysis()
        out = Path(out) if out is not None else run.path / "report"
        _check_out(out, run.path)
        with atomic_folder(out, overwrite=True) as tmp:
            tmp.chmod(0o755)  # mkdtemp makes it private; a report is meant to be shared
            ctx = ReportContext(run, tmp)
            sections: list[Section] = []
            bar = tqdm(figures_for(ctx.task), desc="report", unit="figure", disable=not progress, leave=False)
            for make in bar:
                bar.set_postfix_str(make.__name__)
                t = time.perf_counter()
                try:
                    made = make(ctx)
                except TrustError as exc:  # this figure needs the run's code; the rest are data
                    if not any("needs the run's code" in w for w in ctx.warnings):
                        ctx.warnings.append(str(exc))
                    log.warning("report: %s left out: %s", make.__name__, exc)
                    continue
                except PictureError as exc:  # no picture of the samples (an input shape nothing draws)
                    note = "figures with sample pictures are left out: "
                    if not any(w.startswith(note) for w in ctx.warnings):
                        ctx.warnings.append(note + str(exc))
                    log.warning("report: %s left out: %s", make.__name__, exc)
                    continue
                log.debug("report: %s in %.2f s", make.__name__, time.perf_counter() - t)
                sections += made if isinstance(made, list) else [made] if made is not None else []
            if compare is not None:  # `report RUN_B --compare RUN_A`: the comparison page (report/compare.py)
                from samplescope.report import compare as compare_page

                sections += compare_page.sections(ctx, compare)
            seconds = time.perf_counter() - started
            footer = (
                f"samplescope report of {run.path.resolve()}, written "
                f"{time.strftime('%Y-%m-%d %H:%M')} in {seconds:.1f} s."
            )
            page = render(f"samplescope report: {run.name}", sections, tmp, ctx.warnings, footer)
            (tmp / REPORT_HTML).write_text(page, encoding="utf-8")
    finally:
        run.close()
    log.debug("wrote report %s in %.1f s", out / REPORT_HTML, time.perf_counter() - started)
    return out


def _check_out(out: Path, run_path: Path) -> None:
    """Refuse to replace the run itself, or a folder that is not an earlier report."""
    target, run_dir = out.resolve(), run_path.resolve()
    if target == run_dir or target in run_dir.parents:
        raise RunError(
            f"--out {out} would replace the run folder {run_path}; choose another folder."
        )
    if out.exists():
        if not out.is_dir() or is_run(out):
            raise RunError(f"--out {out} exists and is not a report folder; choose another folder.")
        if any(out.iterdir()) and not (out / REPORT_HTML).exists():
            raise RunError(
                f"--out {out} is a non-empty folder without {REPORT_HTML}; the report replaces its "
                "folder, so choose a new or empty folder."
            )
