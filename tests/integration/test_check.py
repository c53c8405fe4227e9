"""`Integration.check()` and `samplescope check` name every kind of failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import samplescope
from samplescope import Integration, Subset
from samplescope.errors import IntegrationError
from samplescope.integration.loader import load_integration

REPO = Path(__file__).resolve().parents[2]


def tiny(**overrides) -> Integration:
    """A small, healthy integration; ``overrides`` replace one of its functions to break it."""
    rng = np.random.default_rng(0)
    images = rng.random((40, 1, 4, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    integ = Integration("tiny", classes=["a", "b", "c"])

    integ.subset("train")(overrides.get("train", lambda s: Subset(ids=list(range(30)), data=(images[:30], labels[:30]))))
    integ.subset("validation")(lambda s: Subset(ids=list(range(10)), data=(images[30:], labels[30:])))
    integ.input("image")(overrides.get("image", lambda smp: smp.data[0][smp.index]))
    integ.ground_truth(overrides.get("label", lambda smp: int(smp.data[1][smp.index])))
    integ.metadata("stats")(overrides.get("stats", lambda smp: {"mean": float(smp.data[0][smp.index].mean()), "tag": "x"}))
    return integ


def failure(report, function: str) -> str:
    rows = [r for r in report.rows if r.function == function]
    assert rows and rows[0].status == "FAIL", report.table()
    return rows[0].detail


def test_healthy_integration_passes():
    report = tiny().check()
    assert report.ok, report.table()
    assert "all checks passed" in report.table()


@pytest.mark.parametrize(
    ("override", "function", "message"),
    [
        ({"image": lambda s: 1 / 0}, "image", r"ZeroDivisionError.*sample train\[0\]"),
        ({"image": lambda s: np.zeros((1, 4, 5 if s.index == 29 else 4), np.float32)}, "image",
         r"shape \(1, 4, 5\).*\(1, 4, 4\).*sample train\[29\]"),
        ({"image": lambda s: np.full((1, 4, 4), np.nan, np.float32)}, "image", r"NaN or inf"),
        ({"image": lambda s: np.random.random((1, 4, 4))}, "image", r"non-deterministic"),
        ({"label": lambda s: 7}, "ground_truth", r"class index 7, outside 0\.\.2"),
        ({"label": lambda s: "cat"}, "ground_truth", r"expected a class index"),
        ({"stats": lambda s: {"mean": float("nan"), "tag": "x"}}, "stats", r"key 'mean'.*use None"),
        ({"stats": lambda s: {"mean": 1.0, "tag": "x" if s.index < 5 else 3}}, "stats",
         r"key 'tag' changed type from string to number"),
        ({"stats": lambda s: {"mean": 1.0} if s.index else {"other": 1.0}}, "stats", r"keys must not change"),
        ({"stats": lambda s: [1, 2]}, "stats", r"must be a number, string, bool or None"),
        ({"train": lambda s: Subset(ids=[0, 1, 1, 2], data=None)}, "train", r"duplicate sample id 1"),
        ({"train": lambda s: Subset(ids=[0, None], data=None)}, "train", r"missing sample id"),
    ],
)
def test_check_names_the_failure(override, function, message):
    report = tiny(**override).check()
    assert not report.ok
    import re

    assert re.search(message, failure(report, function)), failure(report, function)


def test_batched_function_wrong_length_is_named():
    integ = tiny()
    integ.metadata("bad", batched=True)(lambda b: {"v": np.zeros(len(b) + 1)})
    assert "for a batch of" in failure(integ.check(), "bad")


def test_raise_for_failures():
    with pytest.raises(IntegrationError, match="check\\(s\\) failed"):
        tiny(label=lambda s: 9).check().raise_for_failures()


def test_loader_errors(tmp_path):
    with pytest.raises(IntegrationError, match="neither a built-in"):
        load_integration(str(tmp_path / "nope"))
    with pytest.raises(IntegrationError, match="does not exist"):
        load_integration(str(tmp_path / "nope.py"))
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_module_anywhere\n")
    with pytest.raises(IntegrationError, match="failed to import.*ModuleNotFoundError"):
        load_integration(bad)
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(IntegrationError, match="defines 0 Integration"):
        load_integration(empty)


def test_unknown_subset_name_is_refused():
    with pytest.raises(IntegrationError, match="'holdout' is not one of"):
        Integration("x", classes=["a"]).subset("holdout")


def broken_mnist_copy(tmp_path: Path) -> Path:
    src = (Path(samplescope.__file__).parent / "integrations" / "mnist.py").read_text()
    src = src.replace(
        "return images[batch.indices, None].astype(np.float32) / 255.0  # (B, 1, 28, 28)",
        "return images[batch.indices, None, :27].astype(np.float32) / 0.0  # broken: shape and inf",
    )
    src = src.replace('"ink": ink,', '"ink": np.where(batch.indices % 2 == 0, np.nan, ink),')
    path = tmp_path / "broken_mnist.py"
    path.write_text(src)
    return path


def test_cli_check_fails_on_broken_mnist_copy(tmp_path, mnist_env):
    path = broken_mnist_copy(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "samplescope", "check", str(path)], capture_output=True, text=True, check=False, timeout=300
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "image" in proc.stdout and "NaN or inf" in proc.stdout
    assert "shape" in proc.stdout and "key 'ink'" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_cli_check_passes_on_mnist(mnist_env):
    proc = subprocess.run(
        [sys.executable, "-m", "samplescope", "check", "mnist"], capture_output=True, text=True, check=False, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks passed" in proc.stdout


def test_preprocess_and_subsets_run_once_when_threads_ask_together():
    """A server's threads may need the integration at the same moment (the prewarm thread and
    a request): preprocess and each subset function still run once, and all see one state."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    integ = tiny()
    calls = {"preprocess": 0, "train": 0}
    lock = threading.Lock()

    def count(name: str) -> None:
        with lock:
            calls[name] += 1
        time.sleep(0.2)  # long enough that unguarded threads would all start it

    @integ.preprocess
    def prepare():
        count("preprocess")
        return object()

    train = integ._subsets["train"]
    integ._subsets["train"] = lambda state: (count("train"), train(state))[1]
    with ThreadPoolExecutor(4) as pool:
        states = list(pool.map(lambda _: integ.state, range(4)))
        subsets = list(pool.map(lambda _: integ.get_subset("train"), range(4)))
    assert calls == {"preprocess": 1, "train": 1}
    assert all(s is states[0] for s in states) and all(s is subsets[0] for s in subsets)


def test_check_says_the_input_kind_and_how_it_was_decided():
    """The table names the input kind, and whether the integration declared it or check inferred it."""
    inferred = tiny().check()
    row = next(r for r in inferred.rows if r.kind == "input kind")
    assert (row.function, row.status) == ("image", "ok")
    assert row.detail.startswith("image, inferred from the input's shape (1, 4, 4)")
    assert "input kind" in inferred.table()

    table = np.random.default_rng(0).random((20, 3)).astype(np.float32)
    integ = Integration("table", classes=["a", "b"])
    integ.subset("train")(lambda s: Subset(ids=list(range(15)), data=None))
    integ.subset("validation")(lambda s: Subset(ids=list(range(15, 20)), data=None))
    integ.input("x", kind="vector", feature_names=["p", "q", "r"])(lambda smp: table[smp.index])
    integ.ground_truth(lambda smp: smp.index % 2)
    row = next(r for r in integ.check().rows if r.kind == "input kind")
    assert row.detail == "vector, declared (@x.input('x', kind='vector'))"

    flat = tiny(image=lambda s: np.zeros((4, 4), np.float32)).check()  # (H, W): neither kind
    row = next(r for r in flat.rows if r.kind == "input kind")
    assert row.status == "FAIL" and "neither an image (C, H, W) nor a vector" in row.detail
