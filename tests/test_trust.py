"""A run folder is data: opening, serving, reporting or analysing someone else's run runs none of its code.

Each malicious run below writes a marker file if any of its code runs. The marker
must not appear unless the user says they trust the run (the positive controls
show that the marker does appear then, so the tests can fail).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
import torch

import samplescope
from samplescope.cli import main
from samplescope.errors import IntegrationError, RunError, TrustError
from samplescope.store import layout
from samplescope.testing import make_tiny_run, serving

REPO = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this runs ``code``: what a malicious model.pt does."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def _write_marker_code(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).write_text('code from the run folder ran')"


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("trust") / "clean")


def _copy(clean_run: Path, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    shutil.copytree(clean_run, path)
    return path


def _edit_info(path: Path, edit) -> None:
    info = json.loads((path / layout.RUN_JSON).read_text())
    edit(info)
    (path / layout.RUN_JSON).write_text(json.dumps(info))


@pytest.fixture
def pickle_run(clean_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A layout-1 run whose model.pt is a pickle that writes a marker, and names a non-built-in class."""
    marker = tmp_path / "pickle-ran"
    path = _copy(clean_run, tmp_path, "pickled")
    (path / layout.WEIGHTS).unlink()
    torch.save(_Payload(_write_marker_code(marker)), path / layout.LEGACY_WEIGHTS)
    _edit_info(path, lambda info: info["model"].update({"class": "their_models.Net", "config": None}))
    return path, marker


@pytest.fixture
def integration_run(clean_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A run whose recorded integration is a file (shipped in the run folder) that writes a marker."""
    marker = tmp_path / "integration-ran"
    path = _copy(clean_run, tmp_path, "their-integration")
    evil = path / "integration.py"
    evil.write_text(_write_marker_code(marker) + "\n")
    digest = hashlib.sha256(evil.read_bytes()).hexdigest()
    _edit_info(path, lambda info: info["integration"].update(
        {"source": str(evil), "hash": digest, "module": "samplescope_user_integration_0123456789"}
    ))
    return path, marker


def _read_everything(run) -> None:
    """Everything an untrusted run still offers: tables, latent, map, neighbours, insights, metrics."""
    assert len(run.samples()) > 0
    assert run.latent().shape[0] == len(run.samples())
    assert len(run.similar(0, k=3)) == 3
    assert run.insights() is not None
    assert 0 <= run.metrics()["accuracy"] <= 1
    assert not run.trusted


def test_a_pickled_model_is_never_unpickled_untrusted(pickle_run):
    path, marker = pickle_run
    run = samplescope.open_run(path)
    _read_everything(run)
    with pytest.raises(TrustError, match="--trust"):
        run.model()
    with pytest.raises(TrustError):
        samplescope.analyze_run(path, projection="pca", progress=False)
    assert not marker.exists()
    # the control: trusting the run unpickles it (so the marker check above can fail)
    with pytest.raises(Exception):  # noqa: B017 - the payload is not a model; what matters is that it ran
        samplescope.open_run(path, trust=True).model()
    assert marker.exists()


def test_a_pickle_under_a_built_in_class_name_is_refused_as_data(pickle_run):
    """A layout-1 run naming samplescope's own CNN loads model.pt with weights_only=True: no code runs."""
    path, marker = pickle_run
    _edit_info(path, lambda info: info["model"].update({"class": "samplescope.models.cnn.SmallCNN"}))
    clean_config = json.loads((path / layout.RUN_JSON).read_text())
    clean_config["model"]["config"] = {"num_classes": 10, "input_size": 8}
    (path / layout.RUN_JSON).write_text(json.dumps(clean_config))
    with pytest.raises(RunError, match="not a plain state dict"):
        samplescope.open_run(path, trust=True).model()
    assert not marker.exists()


def test_an_integration_file_named_by_the_run_is_never_imported_untrusted(integration_run):
    path, marker = integration_run
    run = samplescope.open_run(path)
    _read_everything(run)
    for feature in (lambda: run.image(0), lambda: run.input(0), lambda: run.heatmap(0, method="saliency")):
        with pytest.raises(TrustError, match="samplescope trust"):
            feature()
    with pytest.raises(TrustError):
        samplescope.analyze_run(path, projection="pca", progress=False)
    assert main(["analyze", str(path), "--strict"]) == 2
    assert not marker.exists()
    with pytest.raises(IntegrationError):  # the control: trusted, it runs (and is no integration)
        samplescope.open_run(path, trust=True).integration()
    assert marker.exists()


def test_strict_refuses_a_changed_file_before_running_it(integration_run):
    path, marker = integration_run
    evil = path / "integration.py"
    evil.write_text(evil.read_text() + "# changed\n")
    with pytest.raises(IntegrationError, match="nothing of it was run"):
        samplescope.analyze_run(path, projection="pca", progress=False, strict=True, trust=True)
    assert not marker.exists()


def test_report_of_an_untrusted_run_leaves_out_the_figures_that_need_code(integration_run, tmp_path):
    path, marker = integration_run
    from samplescope.report.build import build_report

    out = build_report(path, tmp_path / "report", progress=False)
    html = (out / "report.html").read_text()
    assert "samplescope trust" in html  # the report says which figures need trust and how to grant it
    assert list(out.glob("*.png"))  # figures from stored data are still drawn
    assert not marker.exists()


def test_serving_untrusted_runs_runs_none_of_their_code(pickle_run, integration_run, tmp_path):
    """The real `samplescope serve` command, start-up prewarm included, with requests for every route kind."""
    markers = []
    # the pickled run's integration is built in (its images are fine), its model is not
    expected = {pickle_run[0]: (200, 403), integration_run[0]: (403, 403)}
    for path, marker in (pickle_run, integration_run):
        with serving(path, log=tmp_path / f"{path.name}.log") as base:
            assert httpx.get(base + "/api/samples/0", timeout=10).status_code == 200
            assert httpx.get(base + "/api/samples/0/similar?k=3", timeout=10).status_code == 200
            routes = ("/api/samples/0/image.png", "/api/samples/0/heatmap.png?method=saliency")
            for route, status in zip(routes, expected[path], strict=True):
                r = httpx.get(base + route, timeout=30)
                assert r.status_code == status, (route, r.status_code, r.text[:200])
                if status == 403:
                    assert "samplescope trust" in r.json()["detail"]
            time.sleep(3.5)  # past the start-up prewarm (2 s after start)
        markers.append(marker)
    assert not any(m.exists() for m in markers)


def test_own_runs_need_no_prompt_and_others_get_one(tmp_path, monkeypatch):
    """A run made here with a user's integration file reopens without --trust; in another user's trust list it
    needs `samplescope trust RUN`, after which it opens."""
    import samplescope.integrations.digits as builtin

    src = tmp_path / "my_digits.py"
    src.write_text(Path(builtin.__file__).read_text())
    out = samplescope.train_run(str(src), tmp_path / "run", epochs=1, limit=200, progress=False)
    assert samplescope.open_run(out).trusted
    assert samplescope.open_run(out).image(0).ndim >= 2

    monkeypatch.setenv("SAMPLESCOPE_CONFIG_DIR", str(tmp_path / "someone-else"))
    run = samplescope.open_run(out)
    assert not run.trusted
    with pytest.raises(TrustError):
        run.image(0)
    assert samplescope.open_run(out, integration=str(src)).image(0).ndim >= 2  # a file the user names
    assert main(["trust", str(out)]) == 0
    assert samplescope.open_run(out).image(0).ndim >= 2


def test_weights_are_stored_as_data(clean_run):
    """No pickle in a new run: safetensors weights, the class by name."""
    assert (clean_run / layout.WEIGHTS).exists()
    assert not (clean_run / layout.LEGACY_WEIGHTS).exists()
    info = json.loads((clean_run / layout.RUN_JSON).read_text())
    assert info["model"]["class"] == "samplescope.models.cnn.SmallCNN"
    assert info["layout_version"] == layout.LAYOUT_VERSION


def test_a_legacy_state_dict_run_still_opens(clean_run, tmp_path):
    """Layout 1 stored the CNN's state dict in model.pt: it loads (weights_only) and predicts the same."""
    path = _copy(clean_run, tmp_path, "legacy")
    model = samplescope.open_run(path).model()
    (path / layout.WEIGHTS).unlink()
    torch.save(model.state_dict(), path / layout.LEGACY_WEIGHTS)
    again = samplescope.open_run(path).model()
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(model(x), again(x))
