"""The `samplescope` command: thin commands over the functions the Python API uses."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from samplescope.cpu import settle_openmp
from samplescope.errors import ParameterError, SamplescopeError
from samplescope.options import arg_type

log = logging.getLogger("samplescope")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ParameterError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="samplescope",
        description="See a trained classifier's view of its dataset and find where and why it fails.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    p.add_argument("--data-dir", help="where datasets are cached (env SAMPLESCOPE_DATA_DIR)")
    p.add_argument("--mirror", help="a local folder holding the dataset's files (env SAMPLESCOPE_MNIST_MIRROR)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    f = sub.add_parser("fetch", help="download and verify a dataset (mnist)")
    f.add_argument("dataset", choices=["mnist"])

    c = sub.add_parser("check", help="exercise every function of an integration on real samples")
    c.add_argument("integration", help="a .py file, a built-in name (mnist, digits, breast_cancer) or image-folder:PATH")
    c.add_argument("--samples", type=arg_type("samples"), default=8, help="samples checked per subset (default 8)")

    t = sub.add_parser("train", help="train the default model (CNN, MLP...) on an integration and write a run")
    t.add_argument("--integration", default="mnist",
                   help="a .py file, a built-in name (default mnist) or image-folder:PATH (train/ and val/ class folders)")
    t.add_argument("--model", choices=("auto", "cnn", "mlp", "tokens"), default="auto",
                   help="the model to train: auto (default: a CNN for images, an MLP for vectors, an embedding "
                        "model for tokens), cnn, mlp or tokens")
    t.add_argument("--out", default="runs/mnist", help="run folder to write (default runs/mnist)")
    t.add_argument("--epochs", type=arg_type("epochs"), help="training epochs, >= 1 (default: the TrainConfig default)")
    t.add_argument("--batch-size", type=arg_type("batch_size"), help="batch size, >= 1")
    t.add_argument("--lr", type=arg_type("lr"), help="peak learning rate of the one-cycle schedule, > 0")
    t.add_argument("--seed", type=arg_type("seed"), default=0, help="random seed (default 0); same seed, same model")
    t.add_argument("--threads", type=arg_type("threads"), help="CPU threads for torch, >= 1 (default: all cores)")
    _recipe_option(t)
    _device_option(t)
    t.add_argument("--limit", type=arg_type("limit"), help="use only the first N >= 1 samples of each subset (quick runs)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted training from its checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--relabel", help="new labels: a CSV/Parquet/JSON file with new_label (exported from a "
                   "relabel:X tag), or tag:relabel:* for those tags of --tags-from")
    t.add_argument("--exclude", action="append", default=[], metavar="TAG",
                   help="leave the samples of this tag of --tags-from (or of a file) out of training; repeatable")
    t.add_argument("--tags-from", metavar="RUN", help="the run whose tags --exclude and --relabel name")

    a = sub.add_parser("analyze", help="predictions, latent space, map, neighbours, insights for every sample")
    a.add_argument("run", help="run folder")
    a.add_argument("--layer", help="latent layer (default: the input of the final classifier layer)")
    a.add_argument("--projection", choices=["umap", "tsne", "pca"], help="2-D map method")
    a.add_argument("--heatmaps", choices=["none", "all"], default="none",
                   help="'all' precomputes Grad-CAM for every sample (predicted and true class)")
    a.add_argument("--seed", type=arg_type("seed"), default=0, help="random seed for the map and clustering")
    a.add_argument("--strict", action="store_true", help="refuse when the integration changed since training")
    a.add_argument("--engine", choices=["embedded", "ray"], default="embedded",
                   help="where the per-sample pass runs: this process (default) or Ray (docs/scale.md)")
    a.add_argument("--ray-address", help="with --engine ray: join this cluster (host:port, ray://host:port, "
                   "auto); default: start a local Ray instance for the job")
    a.add_argument("--workers", type=arg_type("workers"),
                   help="with --engine ray: model copies (actors); default: as many as the CPUs (or GPUs) allow")
    a.add_argument("--gpus-per-worker", type=arg_type("gpus_per_worker"), default=0.0,
                   help="with --engine ray: GPUs each worker holds (0 = CPU workers; 0.5 = two per GPU)")
    a.add_argument("--batch-size", type=arg_type("batch_size"), default=2048,
                   help="with --engine ray: samples per shard, one Ray task (default 2048)")
    _device_option(a)
    _trust_options(a)

    s = sub.add_parser("serve", help="serve the web app for a run on 127.0.0.1")
    s.add_argument("run", help="run folder")
    s.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=arg_type("port"), default=8765, help="port, 1 to 65535 (default 8765)")
    s.add_argument("--open", action="store_true", help="open a browser")
    s.add_argument("--compare", metavar="RUN_A", help="an earlier run of the same integration: adds the Compare view")
    _device_option(s)
    _trust_options(s)

    r = sub.add_parser("report", help="write PNG figures and a self-contained HTML report")
    r.add_argument("run", help="run folder")
    r.add_argument("--out", help="output folder (default RUN/report)")
    r.add_argument("--compare", metavar="RUN_A", help="add a comparison page against this earlier run")
    _trust_options(r)

    tr = sub.add_parser("trust", help="trust the code a run names (its integration file and model class)")
    tr.add_argument("run", help="run folder")

    cp = sub.add_parser("compare", help="what run B fixed, broke and kept against run A (same integration)")
    cp.add_argument("run_a", help="the earlier run")
    cp.add_argument("run_b", help="the later run")
    cp.add_argument("--out", help="also write comparison.json, samples.parquet and summary.txt into this folder")
    cp.add_argument("--spec", help="also evaluate this population-test spec (samplescope test) on both runs")

    te = sub.add_parser("test", help="population tests: exit 1 when a check of the spec fails")
    te.add_argument("run", help="run folder")
    how = te.add_mutually_exclusive_group(required=True)
    how.add_argument("--spec", help="TOML file of [[check]] tables (see docs/cli.md)")
    how.add_argument("--suggest", action="store_true", help="print a spec made from the run's insights")

    tg = sub.add_parser("tag", help="tag samples (an insight's, a saved selection's, listed ids), or list the tags")
    tg.add_argument("run", help="run folder")
    tg.add_argument("name", nargs="?", help="the tag (mislabeled, relabel:7, exclude, any word); none: list the tags")
    which = tg.add_mutually_exclusive_group()
    which.add_argument("--insight", metavar="KIND", help="the samples of every insight of this kind (mislabel, ...)")
    which.add_argument("--selection", metavar="NAME", help="the samples of this saved selection")
    which.add_argument("--ids", metavar="ID,ID,...", help="these sample ids, comma-separated")
    tg.add_argument("--subset", help="only the samples of this subset (train, validation)")
    tg.add_argument("--remove", action="store_true", help="remove the tag from those samples (from all, if none named)")

    ls = sub.add_parser("runs", help="list runs with their accuracy")
    ls.add_argument("folder", nargs="?", default="runs", help="folder holding runs (default runs)")

    d = sub.add_parser("demo", help="fetch MNIST, train, analyse and serve: the whole job")
    d.add_argument("--out", default="runs/mnist", help="run folder (default runs/mnist)")
    d.add_argument("--port", type=arg_type("port"), default=8765, help="port, 1 to 65535 (default 8765)")
    d.add_argument("--no-serve", action="store_true", help="stop after the analysis")
    _recipe_option(d)
    _device_option(d)
    return p


def _device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto",
                   help="where the model runs: auto (CUDA when there is one, the default), cpu, cuda, cuda:N, mps")


def _recipe_option(p: argparse.ArgumentParser) -> None:
    from samplescope.train.recipes import RECIPE_NAMES  # imports no torch

    p.add_argument("--recipe", choices=RECIPE_NAMES, default="default",
                   help="training recipe: default (most accurate) or fast (a few times shorter, ~0.4%% less accurate)")


def _trust_options(p: argparse.ArgumentParser) -> None:
    """A run folder is data; these say when its code may run (see samplescope/trust.py)."""
    p.add_argument("--trust", action="store_true",
                   help="run the run's own integration file and model class even if not in your trust list")
    p.add_argument("--integration", help="use this integration (.py file or built-in name) instead of the "
                   "one the run records (you name it, so it is trusted)")


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except ParameterError as exc:  # a usage error: one line, like every other error
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader chatters at INFO
    if args.data_dir:
        os.environ["SAMPLESCOPE_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if args.mirror:
        os.environ["SAMPLESCOPE_MNIST_MIRROR"] = str(Path(args.mirror).resolve())
    if args.command in _TORCH_HEAVY:
        settle_openmp()
    try:
        return COMMANDS[args.command](args) or 0
    except SamplescopeError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; earlier results are intact", file=sys.stderr)
        return 130


def _fetch(args: argparse.Namespace) -> int:
    from samplescope.data.mnist import fetch_mnist

    folder = fetch_mnist()
    print(f"MNIST is ready in {folder}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from samplescope.integration.loader import load_integration

    report = load_integration(args.integration).check(samples_per_subset=args.samples)
    print(report.table())
    return 0 if report.ok else 1


def _train(args: argparse.Namespace) -> int:
    from samplescope.pipeline.train import train_run
    from samplescope.run import open_run

    integration = args.integration
    if args.relabel or args.exclude:  # samplescope/curation.py: the integration with the decisions applied
        from samplescope.curation import curate

        integration = curate(integration, relabel=args.relabel, exclude=args.exclude, tags_from=args.tags_from)
    out = train_run(
        integration, args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, threads=args.threads, limit=args.limit, resume=args.resume, overwrite=args.overwrite,
        device=args.device, recipe=args.recipe, model=args.model,
    )
    run = open_run(out)
    acc = run.info["metrics"].get("val_acc")
    print(f"wrote {out}: validation accuracy {acc:.2%} after {run.info['train_seconds']} s" if acc is not None
          else f"wrote {out}")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from samplescope.pipeline.analyze import analyze_run, summary_text

    engine: object = args.engine
    if args.engine == "ray":
        from samplescope.engines.ray_engine import RayEngine

        engine = RayEngine(address=args.ray_address, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                           batch_size=args.batch_size)
    elif args.ray_address or args.workers or args.gpus_per_worker:
        raise ParameterError("--ray-address, --workers and --gpus-per-worker need --engine ray; add it.")
    analyze_run(args.run, layer=args.layer, projection=args.projection, heatmaps=args.heatmaps,
                seed=args.seed, strict=args.strict, trust=args.trust, integration=args.integration,
                device=args.device, engine=engine)
    print(summary_text(args.run))
    return 0


def _require_free_port(host: str, port: int) -> None:
    """Fail in one line, before loading the run, when ``host:port`` cannot be listened on."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ParameterError(
                    f"Port {port} on {host} is already in use (another server?); "
                    f"choose a free one with --port, e.g. --port {port + 1 if port < 65535 else 8765}."
                ) from exc
            raise ParameterError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --host or --port."
            ) from exc


def _serve(args: argparse.Namespace) -> int:
    _require_free_port(args.host, args.port)
    from samplescope.server.serve import serve

    serve(args.run, host=args.host, port=args.port, open_browser=args.open, trust=args.trust,
          integration=args.integration, device=args.device, compare=args.compare)
    return 0


def _report(args: argparse.Namespace) -> int:
    from samplescope.report.build import build_report

    out = build_report(args.run, args.out, trust=args.trust, integration=args.integration, compare=args.compare)
    print(f"wrote the report to {out}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from samplescope.compare import compare

    result = compare(args.run_a, args.run_b)
    print(result.text())
    if args.spec:
        print(result.checks_text(args.spec))
    if args.out:
        print(f"wrote {result.write(args.out)}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from samplescope import checks

    if args.suggest:
        print(checks.suggest(args.run))
        return 0
    results = checks.evaluate(args.run, checks.load_spec(args.spec))
    print(checks.table(results))
    return 0 if all(r.passed for r in results) else 1


def _tag(args: argparse.Namespace) -> int:
    from samplescope.tagging import tag_samples

    for line in tag_samples(args.run, args.name, insight=args.insight, selection=args.selection, ids=args.ids,
                            subset=args.subset, remove=args.remove):
        print(line)
    return 0


def _trust(args: argparse.Namespace) -> int:
    from samplescope.trust import trust_run

    for line in trust_run(args.run):
        print(line)
    return 0


def _runs(args: argparse.Namespace) -> int:
    from samplescope.store import RunDatabase, layout
    from samplescope.store.folder import is_run, read_run_info

    folder = Path(args.folder)
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"{folder} is a file, not a folder of runs; pass the folder that holds them.")
    rows, damaged = [], []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.startswith(".") or not is_run(path):
            continue
        try:  # one damaged run is reported on its own line and does not hide the others
            info = read_run_info(path)
            with RunDatabase(path / layout.DATABASE) as db:
                n = db.count()
        except SamplescopeError as exc:
            damaged.append(f"error: run {path.name}: {exc}")
            rows.append((path.name, "damaged", "-", "-", "-"))
            continue
        acc = (info.get("metrics") or {}).get("val_acc")
        acc_text = f"{acc:.2%}" if isinstance(acc, int | float) else "-"
        rows.append((path.name, f"{n:,}", acc_text, "yes" if info.get("analysis") else "no", str(info.get("created", ""))))
    if not rows:
        print(f"no runs in {folder}/ (train one with `samplescope train`)")
        return 0
    head = ("run", "samples", "val accuracy", "analysed", "created")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for line in damaged:
        print(line, file=sys.stderr)
    return 1 if damaged else 0


def _demo(args: argparse.Namespace) -> int:
    from samplescope.data.mnist import fetch_mnist
    from samplescope.pipeline.analyze import analyze_run, summary_text
    from samplescope.pipeline.train import train_run
    from samplescope.store import layout
    from samplescope.store.folder import is_run, read_json

    out = Path(args.out)
    if not args.no_serve:
        _require_free_port("127.0.0.1", args.port)  # before minutes of training, not after
    split: dict[str, float | str] = {"install": _install_seconds()}
    t = time.perf_counter()
    fetch_mnist()
    split["fetch"] = time.perf_counter() - t
    t = time.perf_counter()
    if not is_run(out):
        train_run("mnist", out, device=args.device, recipe=args.recipe)
        split["train"] = time.perf_counter() - t
    else:
        print(f"{out} exists; reusing it (delete it to train again)")
        split["train"] = "reused"
    t = time.perf_counter()
    if not (read_json(out / layout.RUN_JSON).get("analysis")):
        analyze_run(out, device=args.device)
        split["analyse"] = time.perf_counter() - t
    else:
        split["analyse"] = "reused"
    print(summary_text(out))
    if args.no_serve:
        print(_demo_split(split))
        return 0
    from samplescope.server.serve import serve

    _require_free_port("127.0.0.1", args.port)
    t = time.perf_counter()

    def ready(url: str) -> None:
        split["serve start-up"] = time.perf_counter() - t
        print(_demo_split(split), flush=True)

    serve(out, port=args.port, device=args.device, on_ready=ready)
    return 0


def _install_seconds() -> float | str:
    """Seconds `make install` took, when the Makefile just ran it (it leaves them in the venv)."""
    stamp = Path(sys.prefix) / "samplescope-install-seconds"
    try:
        seconds, when = stamp.read_text().split()
        return float(seconds) if time.time() - float(when) < 3600 else "reused"
    except (OSError, ValueError):
        return "not measured"


def _demo_split(split: dict[str, float | str]) -> str:
    """One line: where the demo's time went (install, fetch, train, analyse, serve start-up)."""
    parts = [f"{k} {v:.0f} s" if isinstance(v, float) else f"{k} {v}" for k, v in split.items()]
    total = sum(v for v in split.values() if isinstance(v, float))
    return f"demo time: {', '.join(parts)}; {total:.0f} s in all"


#: commands whose torch work runs on every core (training, inference): see samplescope/cpu.py
_TORCH_HEAVY = frozenset({"train", "analyze", "demo"})

COMMANDS = {
    "fetch": _fetch, "check": _check, "train": _train, "analyze": _analyze, "serve": _serve,
    "report": _report, "runs": _runs, "demo": _demo, "trust": _trust,
    "compare": _compare, "test": _test, "tag": _tag,
}

if __name__ == "__main__":
    raise SystemExit(main())
