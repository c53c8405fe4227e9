"""Bad input to the Ray engine ends in one line that names the problem and the fix, before any work."""

from __future__ import annotations

import sys

import pytest

from samplescope.cli import main
from samplescope.engines import get_engine
from samplescope.errors import ParameterError, RunError, SamplescopeError
from samplescope.pipeline.analyze import analyze_run
from samplescope.testing import free_port

pytestmark = pytest.mark.ray


def _cli_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = [line.split("\r")[-1] for line in err.splitlines() if line.split("\r")[-1].strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_unreachable_address_fails_fast_naming_it(tmp_path, capsys):
    pytest.importorskip("ray")
    from samplescope.engines.ray_engine import RayEngine

    address = f"127.0.0.1:{free_port()}"  # nobody listens there
    missing = tmp_path / "never-opened"  # the address is checked before the run is read
    with pytest.raises(RunError, match=rf"Cannot reach a Ray cluster at --ray-address {address} .*ray start --head"):
        analyze_run(missing, engine=RayEngine(address=address))
    err = _cli_error(capsys, "analyze", str(missing), "--engine", "ray", "--ray-address", f"ray://{address}")
    assert f"ray://{address}" in err and "drop --ray-address" in err
    assert not missing.exists()


def test_an_address_that_is_not_one():
    pytest.importorskip("ray")
    from samplescope.engines.ray_engine import RayEngine

    with pytest.raises(ParameterError, match=r"'headnode' is not an address; pass host:port"):
        get_engine(RayEngine(address="headnode"))


def test_engine_ray_without_ray_installed_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when not installed
    with pytest.raises(SamplescopeError, match=r"`pip install samplescope\[ray\]`"):
        analyze_run(tmp_path / "run", engine="ray")
    err = _cli_error(capsys, "analyze", str(tmp_path / "run"), "--engine", "ray")
    assert "pip install samplescope[ray]" in err


def test_ray_options_need_the_ray_engine(tmp_path, capsys):
    err = _cli_error(capsys, "analyze", str(tmp_path / "run"), "--workers", "2")
    assert "need --engine ray" in err
    with pytest.raises(ParameterError, match="engine='spark' is not an engine"):
        get_engine("spark")
