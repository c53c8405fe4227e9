"""`samplescope train`: encode an integration, train the CNN, write a run.

Checkpoints go to a hidden ``.<name>.partial`` folder beside the run, so
``--resume`` can continue an interrupted job; the finished run is written to a
temporary folder and renamed into place.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from samplescope import curation, trust
from samplescope.errors import IntegrationError, RunError
from samplescope.integration.check import check_integration
from samplescope.integration.core import Integration
from samplescope.integration.loader import load_integration
from samplescope.models.persist import model_spec, save_weights
from samplescope.options import check_option
from samplescope.pipeline.encode import encode_subset, samples_table, subset_sizes
from samplescope.store import RunDatabase, layout
from samplescope.store.folder import (
    RUN_JSON,
    atomic_folder,
    disk_errors,
    folder_bytes,
    require_free_space,
    write_json,
)

log = logging.getLogger(__name__)


def partial_dir(out: Path) -> Path:
    """Where an unfinished training job keeps its checkpoints."""
    return out.with_name(f".{out.name}.partial")


def train_run(
    integration: str | Path | Integration = "mnist",
    out: str | Path = "runs/mnist",
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    threads: int | None = None,
    limit: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    device: str | None = "auto",
    recipe: str = "default",
    model: str = "auto",
) -> Path:
    """Train the default model for the integration's input kind and write the run folder ``out``.

    ``model``: ``auto`` (a CNN for images, an MLP for vectors, an embedding model for
    tokens; samplescope/models/defaults.py), or ``cnn``, ``mlp``, ``tokens``.

    ``recipe``: ``default`` or ``fast`` (samplescope/train/recipes.py): the model's shape and
    the training settings; ``epochs``, ``batch_size`` and ``lr`` override the recipe's.

    ``device``: ``auto`` (CUDA when there is one), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    """
    import torch

    from samplescope.device import resolve_device
    from samplescope.models import defaults
    from samplescope.train.callbacks import ProgressBar
    from samplescope.train.loop import train
    from samplescope.train.recipes import get_recipe

    out = Path(out)
    where = resolve_device(device)  # an unknown device fails before any work
    chosen_recipe = get_recipe(recipe, "train_run()")
    chosen = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "threads": threads}
    for name, value in {**chosen, "seed": seed, "limit": limit}.items():
        check_option(name, value, "train_run()")
    if out.exists() and not overwrite:
        raise RunError(f"Output folder {out} already exists; pass --overwrite to replace it or choose another --out.")
    integ = integration if isinstance(integration, Integration) else load_integration(integration)
    # the checks `samplescope check` runs, before minutes of encoding and training
    report = check_integration(integ)
    if not report.ok:
        raise IntegrationError(report.summary_line(_check_spec(integration, integ)))

    kind = integ.input_kind
    model_name = defaults.choose(kind, model)  # a model that cannot take the input fails before encoding
    sizes = subset_sizes(integ, limit)
    overrides = {k: v for k, v in chosen.items() if v is not None}
    config = chosen_recipe.train_config(seed=seed, **{**defaults.train_overrides(kind, sizes["train"]), **overrides})
    if config.threads:
        torch.set_num_threads(config.threads)

    started = time.time()
    x_train, y_train = _encode_checked(integ, "train", sizes["train"], progress)
    x_val, y_val = _encode_checked(integ, "validation", sizes["validation"], progress)
    encoded = {"train": y_train, "validation": y_val}  # the table's labels too: encoded once
    x_train, y_train = curation.training_rows(integ, x_train, y_train)  # --exclude: kept in the run, not trained on
    # the task learns what training needs from the training labels (regression: the target scaling)
    task = copy.deepcopy(integ.task).fit(y_train)
    t_train, t_val = task.training_targets(y_train), task.training_targets(y_val)
    work = partial_dir(out)
    _prepare_workdir(work, resume)  # after the integration's errors, so those leave nothing behind
    torch.manual_seed(seed)
    vocabulary = list(integ.input_spec.vocabulary or ()) or None
    model, model_config = defaults.build(
        model_name, x_train, task.output_width(integ.classes), chosen_recipe.model, vocabulary
    )
    require_free_space(out.parent, _run_bytes_estimate(model, sizes, out if overwrite else None), f"run {out.name}")

    with disk_errors(work.parent, f"the training checkpoints of {out.name} ({work.name})"):
        history = train(
            model,
            torch.from_numpy(x_train),
            torch.from_numpy(t_train),
            torch.from_numpy(x_val),
            torch.from_numpy(t_val),
            config,
            callbacks=[ProgressBar(disable=not progress)],
            checkpoint_dir=work,
            resume=resume,
            device=where,
            task=task,
        )
        model = model.cpu()  # weights are written from the CPU
    rows = history.to_rows()
    final = [r for r in rows if r.get("kind") == "epoch"][-1] if rows else {}
    train_seconds = time.time() - started

    info: dict[str, Any] = {
        "name": out.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "integration": integ.identity() | {"module": integ.module},
        "task": task.to_dict(),
        "model": model_spec(model, model_config),
        "latent_layer": getattr(model, "latent_layer", None),
        "gradcam_layer": getattr(model, "gradcam_layer", None),
        "input_shape": list(x_train.shape[1:]),
        "input": integ.input_description(x_train.shape[1:]),
        "recipe": chosen_recipe.name,
        "train_config": dataclasses.asdict(config),
        "subsets": sizes,
        "limit": limit,
        "curation": curation.record_of(integ),  # --relabel, --exclude
        "metrics": {"val_acc": final.get("val_acc"), "val_loss": final.get("val_loss")},
        "train_seconds": round(train_seconds, 1),
        "analysis": None,
    }
    write_run(out, integ, model, info, rows, sizes, overwrite=overwrite, progress=progress, labels=encoded)
    shutil.rmtree(work, ignore_errors=True)
    return out


def _input_info(integ: Integration, shape: tuple[int, ...]) -> dict[str, Any]:
    """run.json's ``input`` for a model brought in: any shape the model takes is fine (kind unknown
    when it is neither (C, H, W) nor (F,); heatmaps then say what they need)."""
    try:
        return integ.input_description(shape)
    except IntegrationError:
        return {"kind": None, "shape": [int(s) for s in shape]}


def _check_spec(integration: str | Path | Integration, integ: Integration) -> str:
    """How to name the integration to `samplescope check`."""
    if not isinstance(integration, Integration):
        return str(integration)
    return integ.source or integ.name


def _encode_checked(integ: Integration, subset: str, n: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Encode one subset and refuse labels outside the classes (the checks only sample a few)."""
    try:
        x, y = encode_subset(integ, subset, n, progress=progress)
    except ValueError as exc:  # e.g. np.stack of inputs whose shapes differ
        raise IntegrationError(
            f"Integration {integ.name!r}: the inputs of subset {subset!r} cannot be stacked ({exc}); every "
            "input must have one shape and dtype; fix the input function and run `samplescope check` on it."
        ) from exc
    integ.task.check_labels(y, integ.classes, integ.name, subset)
    return x, y


def _run_bytes_estimate(model: Any, sizes: dict[str, int], replaced: Path | None) -> int:
    """About what a run and its checkpoints take on disk, measured on MNIST and digits runs."""
    params = sum(p.numel() for p in model.parameters())
    # weights + a checkpoint (weights, two AdamW moments), float32; the samples table and history
    written = params * 4 * 4 + sum(sizes.values()) * 256
    return written + (folder_bytes(replaced) if replaced is not None else 0)


def _prepare_workdir(work: Path, resume: bool) -> None:
    """Make the checkpoint folder, failing early (before any training) when it can't be written."""
    from samplescope.errors import CheckpointError

    if resume and not (work / layout.CHECKPOINT).exists():
        raise CheckpointError(
            f"Cannot resume: no checkpoint at {work / layout.CHECKPOINT} (an interrupted run of the same "
            "--out leaves one). Drop --resume to start afresh."
        )
    try:
        if not resume and work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        probe = work / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunError(
            f"Cannot write to {work.parent}: {exc.strerror}. Choose a writable --out folder."
        ) from exc


def write_run(
    out: Path,
    integ: Integration,
    model: Any,
    info: dict[str, Any],
    history_rows: list[dict[str, Any]],
    sizes: dict[str, int],
    overwrite: bool = False,
    progress: bool = False,
    labels: dict[str, np.ndarray] | None = None,
) -> None:
    """Write weights, run.json, the samples table and history into ``out``, atomically.
    ``labels``: subsets' labels encoded already (training's), used rather than encoded again."""

    info = {"layout_version": layout.LAYOUT_VERSION, **info}
    with atomic_folder(out, overwrite=overwrite) as tmp:
        save_weights(model, tmp)  # a state dict as data; run.json names the class
        if integ.write_data is not None:  # a no-code integration's arrays, so the run reopens without them
            integ.write_data(tmp)
        with RunDatabase(tmp / layout.DATABASE, writable=True) as db:
            # written a chunk at a time as the integration computes it: never whole in memory
            n = db.write_samples(samples_table(integ, sizes, progress=progress, labels=labels))
            db.write_history(history_rows)
        write_json(tmp / RUN_JSON, info)
    # The user ran this integration and model to make the run: reopening it later needs no prompt.
    code = trust.RunCode.of(info)
    trust.remember(code.integration_hash, code.integration_source, code.model_class)
    log.info("wrote run %s (%d samples)", out, n)


def create_run(
    integration: str | Path | Integration,
    model: Any,
    out: str | Path,
    *,
    latent_layer: str | None = None,
    gradcam_layer: str | None = None,
    limit: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Make a run from a model trained elsewhere: any ``nn.Module`` classifier with its weights loaded.

    The weights are saved as data (safetensors) and the class by name, so the class must
    be importable when the run is opened (define it in a module, or in the integration
    file) and constructible as ``cls(**model_kwargs)``.
    """
    import torch

    from samplescope.analysis.inference import default_latent_layer, list_layers

    integ = integration if isinstance(integration, Integration) else load_integration(integration)
    if not isinstance(model, torch.nn.Module):
        raise RunError(f"model is a {type(model).__name__}; pass a torch.nn.Module with its weights loaded.")
    layers = list_layers(model)
    for name, value in (("latent_layer", latent_layer), ("gradcam_layer", gradcam_layer)):
        if value is not None and value not in layers:
            from samplescope.errors import NotFoundError

            raise NotFoundError(f"{name}={value!r} is not a layer of the model; its layers are: {layers}.")
    sizes = subset_sizes(integ, limit)
    x0 = integ.encode_inputs(integ.subset_names[0], np.arange(1))
    info: dict[str, Any] = {
        "name": Path(out).name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "integration": integ.identity() | {"module": integ.module},
        "task": integ.task.to_dict(),
        "model": model_spec(model, init_kwargs=model_kwargs),
        "latent_layer": latent_layer or default_latent_layer(model),
        "gradcam_layer": gradcam_layer,
        "input_shape": list(x0.shape[1:]),
        "input": _input_info(integ, x0.shape[1:]),
        "train_config": None,
        "subsets": sizes,
        "limit": limit,
        "metrics": {},
        "train_seconds": None,
        "analysis": None,
    }
    write_run(Path(out), integ, model.eval(), info, [], sizes, overwrite=overwrite, progress=progress)
    return Path(out)
