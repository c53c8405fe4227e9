"""Which code a run folder may make samplescope run.

A run folder is data: its tables, latent vectors, map, insights and stored
heatmaps are read without running anything from it. Two things in a run name
code: the integration file recorded in ``run.json`` (its ``source``) and the
model class (``model.class``). samplescope imports them only when

- they are part of samplescope itself (the built-in integrations and models), or
- the user names the integration on the command line (``--integration FILE``), or
- the user says they trust this run (``--trust``, ``open_run(path, trust=True)``), or
- the integration file's SHA-256 (and the model class) are in the user's trust list,
  which ``samplescope trust RUN`` adds to, or it is a file the user made a run with
  themselves: ``train`` and ``create_run`` record the paths and classes they ran.

The trust list is a JSON file in the user's config folder
(``$SAMPLESCOPE_CONFIG_DIR`` overrides it); it holds hashes, paths and class names, never code.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samplescope.errors import RunError

log = logging.getLogger(__name__)

TRUST_FILE = "trusted.json"
#: Model classes samplescope ships; they are constructed from their stored config.
BUILTIN_MODEL_PREFIX = "samplescope.models."


def config_dir() -> Path:
    env = os.environ.get("SAMPLESCOPE_CONFIG_DIR")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("samplescope"))


def _trust_path() -> Path:
    return config_dir() / TRUST_FILE


def _read() -> dict[str, Any]:
    path = _trust_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"integrations": {}, "paths": {}, "model_classes": {}}
    except (OSError, ValueError) as exc:
        raise RunError(
            f"The trust list {path} cannot be read ({exc}); delete it and trust your runs again "
            "with `samplescope trust RUN`."
        ) from exc
    if not isinstance(data, dict):
        raise RunError(f"The trust list {path} is not a JSON object; delete it and trust your runs again.")
    return {
        "integrations": dict(data.get("integrations") or {}),
        "paths": dict(data.get("paths") or {}),
        "model_classes": dict(data.get("model_classes") or {}),
    }


def _write(data: dict[str, Any]) -> None:
    path = _trust_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".trusted.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not record trust in %s: %s", path, exc)


def is_trusted_hash(sha256: str | None) -> bool:
    return bool(sha256) and sha256 in _read()["integrations"]


def is_trusted_path(source: str | None) -> bool:
    """A file the user ran samplescope with themselves (``train``/``create_run``), edited since or not."""
    return bool(source) and str(Path(source).resolve()) in _read()["paths"]


def is_trusted_model_class(name: str | None) -> bool:
    return bool(name) and (name.startswith(BUILTIN_MODEL_PREFIX) or name in _read()["model_classes"])


def remember(integration_hash: str | None = None, source: str | None = None,
             model_class: str | None = None, *, path_too: bool = True) -> None:
    """Add an integration file's hash (and its path, with ``path_too``) and/or a model class to the trust list.

    A path is trusted for files the user ran themselves: editing their own integration
    keeps it trusted (the run warns that it changed). ``samplescope trust RUN`` trusts
    the file's current content only.
    """
    if not integration_hash and not model_class:
        return
    data = _read()
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    if integration_hash:
        data["integrations"][integration_hash] = {"source": source, "added": now}
    if path_too and source and Path(source).is_file():
        data["paths"][str(Path(source).resolve())] = {"added": now}
    if model_class and not model_class.startswith(BUILTIN_MODEL_PREFIX):
        data["model_classes"][model_class] = {"added": now}
    _write(data)


@dataclass(frozen=True)
class RunCode:
    """The code a run names, and whether the user trusts it."""

    integration_builtin: str | None  # module name of a built-in integration, else None
    integration_source: str | None  # the recorded file of a user integration
    integration_hash: str | None  # its SHA-256 when the run was made
    model_class: str  # "module.Qualname"

    @classmethod
    def of(cls, info: dict[str, Any]) -> RunCode:
        from samplescope.integration.loader import BUILTINS

        ident = info.get("integration") or {}
        module = ident.get("module") or ""
        builtin = module if module in BUILTINS.values() else None
        if builtin is None and ident.get("name") in BUILTINS and not ident.get("source"):
            builtin = BUILTINS[ident["name"]]
        if ident.get("rebuild"):  # a no-code integration (arrays, image folder): samplescope's code over data
            builtin = module or "samplescope.integrations"
        return cls(
            integration_builtin=builtin,
            integration_source=None if builtin else ident.get("source"),
            integration_hash=None if builtin else ident.get("hash"),
            model_class=str((info.get("model") or {}).get("class") or ""),
        )

    @property
    def builtin_model(self) -> bool:
        return self.model_class.startswith(BUILTIN_MODEL_PREFIX)

    def integration_trusted(self) -> bool:
        """Built in, a file the user made runs with, or a file whose content (as it is now) they trust."""
        if self.integration_builtin:
            return True
        from samplescope.integration.loader import source_hash

        return is_trusted_path(self.integration_source) or is_trusted_hash(source_hash(self.integration_source))

    def model_trusted(self, integration_trusted: bool) -> bool:
        if self.builtin_model:
            return True
        if _defined_in_integration(self.model_class):
            return integration_trusted
        return is_trusted_model_class(self.model_class)

    def what_needs_trust(self) -> str:
        parts = []
        if not self.integration_builtin:
            parts.append(f"integration file {self.integration_source}")
        if not self.builtin_model:
            parts.append(f"model class {self.model_class}")
        return " and ".join(parts) or "nothing"


def _defined_in_integration(class_name: str) -> bool:
    from samplescope.integration.loader import USER_MODULE_PREFIX

    return class_name.startswith(USER_MODULE_PREFIX)


def trust_hint(run_path: Path | str) -> str:
    return (
        f"if you trust whoever made it, pass --trust (Python: open_run(path, trust=True)), "
        f"or run `samplescope trust {run_path}` once"
    )


def trust_run(run_path: str | Path) -> list[str]:
    """Add the code run ``run_path`` names, as it is now, to the trust list; lines saying what was added.

    Reads only ``run.json`` and hashes files: nothing of the run runs here.
    """
    from samplescope.integration.loader import source_hash
    from samplescope.store import layout
    from samplescope.store.folder import read_json

    path = Path(run_path)
    code = RunCode.of(read_json(path / layout.RUN_JSON))
    lines = []
    digest = None
    if code.integration_source:
        digest = source_hash(code.integration_source)
        if digest is None:
            raise RunError(
                f"The run's integration file {code.integration_source} does not exist here; pass the file "
                "with --integration FILE instead."
            )
        lines.append(f"trusted integration file {code.integration_source} (sha256 {digest[:12]})")
    model_class = None if code.builtin_model else code.model_class
    if model_class:
        lines.append(f"trusted model class {model_class}")
    pickled = source_hash(str(path / layout.LEGACY_WEIGHTS))
    if pickled and not (path / layout.WEIGHTS).exists():
        remember(pickled, str(path / layout.LEGACY_WEIGHTS), path_too=False)
        lines.append(f"trusted pickled weights {path / layout.LEGACY_WEIGHTS} (sha256 {pickled[:12]})")
    remember(digest, code.integration_source, model_class, path_too=False)
    return lines or [f"run {path} names only built-in code; nothing to trust"]
