"""`samplescope report` on a tiny run: valid figures, an offline page, the run's own numbers."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samplescope import open_run
from samplescope.analysis.metrics import trend
from samplescope.cli import main
from samplescope.errors import RunError
from samplescope.report import build
from samplescope.report.build import build_report
from samplescope.report.context import ReportContext
from samplescope.report.figures_dashboard import loss_vs_metadata, trend_column
from samplescope.report.figures_insights import MAX_INSIGHTS, pick
from samplescope.report.summary import overview
from samplescope.testing import make_tiny_run

FIGURES = {
    "map_train.png",
    "map_validation.png",
    "confused_pair.png",
    "top_losses.png",
    "heatmaps.png",
    "similar.png",
    "training.png",
    "confusion.png",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("report-run") / "digits")


@pytest.fixture(scope="module")
def report(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole report, written through the CLI (which must exit 0)."""
    out = tmp_path_factory.mktemp("report-out") / "report"
    assert main(["report", str(tiny_run), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def page(report: Path) -> str:
    return (report / "report.html").read_text(encoding="utf-8")


def _text(page: str) -> str:
    """The page's visible text, unescaped, images left out."""
    body = re.sub(r"<style>.*?</style>", "", page, flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


# --------------------------------------------------------------------------- figures


def test_every_figure_is_a_valid_non_blank_png(report: Path, tiny_run: Path):
    run = open_run(tiny_run)
    n_insights = min(len(run.insights()), MAX_INSIGHTS)
    expected = FIGURES | {f"insight_{i}.png" for i in range(1, n_insights + 1)}
    if trend_column(ReportContext(run, report)) is not None:
        expected.add("loss_vs_metadata.png")
    assert {p.name for p in report.glob("*.png")} == expected
    for name in expected:
        with Image.open(report / name) as im:
            im.verify()
        with Image.open(report / name) as im:
            assert im.format == "PNG"
            assert im.width >= 300 and im.height >= 100, name
            pixels = np.asarray(im.convert("L"), dtype=np.float32)
        assert pixels.std() > 5, f"{name} looks blank"


def test_html_embeds_every_image_and_needs_no_other_file(report: Path, page: str):
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert 'href="http' not in page and "<link" not in page and "<script" not in page
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    for png in report.glob("*.png"):
        assert png.read_bytes() in embedded, f"{png.name} is not embedded in report.html"
    for data in embedded:
        Image.open(io.BytesIO(data)).verify()


# --------------------------------------------------------------------------- numbers


def test_html_quotes_the_runs_numbers(tiny_run: Path, page: str):
    run = open_run(tiny_run)
    text = _text(page)
    val, train = run.metrics("validation"), run.metrics("train")
    assert f"Validation accuracy {val['accuracy']:.2%}" in text
    assert f"mean loss {val['mean_loss']:.4f}" in text
    assert f"Train accuracy {train['accuracy']:.2%}" in text
    n_errors = int((~run.samples(subset="validation")["correct"]).sum())
    assert f"({n_errors:,} errors among {val['count']:,} samples)" in text
    sizes = run.info["subsets"]
    assert f"{sizes['train']:,} train" in text and f"{sizes['validation']:,} validation" in text
    cm = val["confusion"]
    diagonal = f"{int(np.trace(cm)):,} of {int(cm.sum()):,} validation samples lie on the diagonal"
    assert diagonal in text
    epochs = run.history().query("kind == 'epoch'")
    assert f"{len(epochs)} epochs" in text
    assert f"accuracy {epochs['val_acc'].iloc[-1]:.2%}" in text


def test_confused_pair_is_the_argmax_of_the_symmetric_confusion(tiny_run: Path, page: str):
    run = open_run(tiny_run)
    cm = run.metrics("validation")["confusion"]
    sym = cm + cm.T
    np.fill_diagonal(sym, 0)
    a, b = sorted(np.unravel_index(int(np.argmax(sym)), sym.shape))
    names = run.classes
    text = _text(page)
    assert f"Most confused pair: {names[a]} and {names[b]}" in text
    assert f"The model confuses {names[a]} and {names[b]} most often" in text
    assert f"{int(sym[a, b]):,} of its" in text


def test_heatmaps_and_neighbours_are_for_the_worst_error(tiny_run: Path, page: str):
    val = open_run(tiny_run).samples(subset="validation")
    worst = val[~val["correct"]].sort_values(["loss", "sample_id"], ascending=[False, True]).iloc[0]
    text = _text(page)
    assert f"Heatmaps of sample #{int(worst['sample_id'])}" in text
    assert f"Most similar samples to #{int(worst['sample_id'])}" in text


def test_top_insights_are_told_with_their_numbers(tiny_run: Path, page: str):
    found = open_run(tiny_run).insights()
    text = _text(page)
    assert f"reported {len(found)} finding(s)" in text
    for kind in {i.kind for i in found}:
        n = sum(i.kind == kind for i in found)
        assert f"{n} {kind.replace('_', ' ')}" in text
    for insight in pick(found):
        assert insight.title in text
        assert insight.text in text
        assert f"severity {insight.severity:.2f}" in text


def test_the_insights_shown_are_each_kinds_best_then_the_most_severe():
    from samplescope.analysis.insights import Insight

    def make(kind, severity):
        return Insight(kind, severity, [0], f"{kind} {severity}", f"{kind} {severity}")

    found = [make("metadata_failure", s) for s in (0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.42)]
    found += [make("outlier", 0.3), make("mislabel", 0.2)]
    shown = pick(sorted(found, key=lambda i: -i.severity), n=4)
    assert [(i.kind, i.severity) for i in shown] == [
        ("metadata_failure", 0.9),
        ("metadata_failure", 0.8),
        ("outlier", 0.3),
        ("mislabel", 0.2),
    ]
    assert len(pick(found[:2])) == 2


def test_loss_against_a_metadata_column_states_its_spearman_trend(tiny_run: Path, tmp_path: Path):
    run = open_run(tiny_run)
    section = loss_vs_metadata(ReportContext(run, tmp_path), "ink", "ink")
    rho = trend(run.aggregate("ink", y="loss", subset="validation", bins=10))
    assert f"Spearman \u03c1 between bin and mean loss {rho:.2f}" in section.paragraphs[0]
    assert section.images == ["loss_vs_metadata.png"]
    with Image.open(tmp_path / "loss_vs_metadata.png") as im:
        assert np.asarray(im.convert("L")).std() > 5


# --------------------------------------------------------------------------- writing


def _copy(report: Path, dest: Path) -> Path:
    shutil.copytree(report, dest)
    return dest


def test_an_existing_report_is_replaced(tiny_run: Path, report: Path, tmp_path: Path, monkeypatch):
    out = _copy(report, tmp_path / "report")
    monkeypatch.setattr(build, "FIGURES", [overview])  # a one-section report is enough here
    assert build_report(tiny_run, out, progress=False) == out
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporary folder left


def test_a_failure_leaves_the_previous_report_intact(
    tiny_run: Path, report: Path, tmp_path: Path, monkeypatch
):
    out = _copy(report, tmp_path / "report")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(ctx):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(build, "FIGURES", [overview, broken])
    with pytest.raises(RuntimeError, match="figure failed"):
        build_report(tiny_run, out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_default_folder_is_inside_the_run(tiny_run: Path, tmp_path: Path, monkeypatch):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    monkeypatch.setattr(build, "FIGURES", [overview])
    assert build_report(run, progress=False) == run / "report"
    assert (run / "report" / "report.html").is_file()


def test_refuses_to_replace_what_is_not_a_report(tiny_run: Path, tmp_path: Path):
    with pytest.raises(RunError, match="would replace the run folder"):
        build_report(tiny_run, tiny_run, progress=False)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(RunError, match="non-empty folder without report.html"):
        build_report(tiny_run, other, progress=False)
    assert (other / "todo.txt").read_text() == "keep me"


def test_an_unanalysed_run_is_refused_with_the_fix(tiny_run: Path, tmp_path: Path, capsys):
    run = shutil.copytree(tiny_run, tmp_path / "raw")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(info | {"analysis": None}))
    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 2
    assert "samplescope analyze" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_large_runs_report_draws_the_overview_and_counts_the_whole_table(tiny_run: Path, tmp_path: Path,
                                                                           monkeypatch):  # fmt: skip
    """Above FULL_MAX samples the report's tables hold only the map overview's draw (as the web
    page's map does), while its numbers, highest losses and confused samples come from the
    whole table: equal to what the same report computes from every row."""
    from samplescope.store import map_queries

    run = open_run(tiny_run)
    every = ReportContext(run, tmp_path / "a")
    assert every.drawn is None and len(every.samples) == every.n
    monkeypatch.setattr(map_queries, "FULL_MAX", 500)
    monkeypatch.setattr(map_queries, "OVERVIEW_POINTS", 300)
    large = ReportContext(run, tmp_path / "b")
    assert large.drawn is not None and 0 < len(large.samples) <= 300 < large.n == every.n
    assert large.samples["sample_id"].tolist() == large.drawn.tolist()
    assert large.error_count == every.error_count > 0
    for errors_only in (False, True):
        got, want = large.top_loss(7, errors_only), every.top_loss(7, errors_only)
        assert got["sample_id"].tolist() == want["sample_id"].tolist()
    assert int(large.focus["sample_id"]) == int(every.focus["sample_id"])
    ids = every.samples["sample_id"].to_numpy()[[5, 3, 1000]]
    assert large.rows([*ids, 10**9]).index.tolist() == ids.tolist()  # in order, unknown ids left out

    out = tmp_path / "report"
    assert build_report(tiny_run, out, progress=False) == out
    text = _text((out / "report.html").read_text(encoding="utf-8"))
    sizes = run.info["subsets"]
    assert f"{sizes['train']:,} train and {sizes['validation']:,} validation samples" in text
    assert f"the maps draw the overview the web page starts from: {len(large.drawn):,} samples" in text
    pair = every.confused_pair
    assert f"{pair.total:,} of its {every.error_count:,} errors" in text
    run.close()
