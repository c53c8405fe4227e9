"""--device: auto picks what is there; a device the machine lacks is a one-line error naming those it has."""

from __future__ import annotations

import pytest
import torch

from samplescope.cli import main
from samplescope.device import available_devices, resolve_device
from samplescope.errors import ParameterError


def test_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert "cpu" in available_devices()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:3"])
def test_missing_cuda_names_the_devices_there_are(spec):
    with pytest.raises(ParameterError, match=r"no CUDA device .*torch sees: cpu"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu", ""])
def test_not_a_device(spec):
    if spec == "":
        assert resolve_device(spec).type in ("cpu", "cuda")  # empty means auto
        return
    with pytest.raises(ParameterError, match=r"--device .* (is not a device|is not supported)"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_refuses_a_missing_device_in_one_line(tmp_path, capsys):
    from samplescope.testing import make_tiny_run

    run = make_tiny_run(tmp_path / "run")
    for argv in (["analyze", str(run), "--device", "cuda"], ["train", "--integration", "digits", "--out",
                 str(tmp_path / "t"), "--device", "cuda:1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "torch sees: cpu" in err, err
    assert not (tmp_path / "t").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_serve_refuses_a_missing_device_before_it_listens(tmp_path):
    """In its own process (a server that started would not return): exit 2, one line, no port held."""
    import subprocess
    import sys

    from samplescope.testing import free_port, make_tiny_run

    run = make_tiny_run(tmp_path / "run")
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "samplescope", "serve", str(run), "--port", str(port),
                           "--device", "cuda"], check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "torch sees: cpu" in lines[0], done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_analyze_run_refuses_a_missing_device_and_keeps_the_run(tmp_path):
    from samplescope.pipeline.analyze import analyze_run
    from samplescope.testing import make_tiny_run

    run = make_tiny_run(tmp_path / "run")
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    for spec in ("cuda", "cuda:2", "mps"):
        with pytest.raises(ParameterError, match=r"torch sees: cpu"):
            analyze_run(run, device=spec, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_open_run_model_goes_to_the_device(tmp_path):
    import samplescope
    from samplescope.testing import make_tiny_run

    path = make_tiny_run(tmp_path / "run")
    run = samplescope.open_run(path, device="cpu")
    assert next(run.model().parameters()).device == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError):
            samplescope.open_run(path, device="cuda").model()
