"""Saving and loading a run's model as data: a safetensors state dict plus a class name.

A run never stores a pickled model. ``run.json``'s ``model`` section names the
class (``"module.Qualname"``) and how to build it: ``config`` (a built-in model's
dataclass config) or ``init_kwargs`` (the JSON keyword arguments a user's class is
called with). Layout-1 runs stored ``model.pt``: a state dict (read with
``weights_only=True``) or, for ``create_run`` runs, a whole pickled module, which is
only unpickled when the user trusts the run.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from samplescope.errors import RunError, TrustError
from samplescope.store import layout

log = logging.getLogger(__name__)


def _builtin_models() -> dict[str, tuple[type, type]]:
    from samplescope.models.cnn import CNNConfig, SmallCNN
    from samplescope.models.mlp import MLP, MLPConfig
    from samplescope.models.tokens import TokenClassifier, TokenConfig

    return {
        "samplescope.models.cnn.SmallCNN": (SmallCNN, CNNConfig),
        "samplescope.models.mlp.MLP": (MLP, MLPConfig),
        "samplescope.models.tokens.TokenClassifier": (TokenClassifier, TokenConfig),
    }


def class_name(model: Any) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"


def model_spec(model: Any, config: Any = None, init_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``run.json`` records about ``model`` so the run can rebuild it without unpickling.

    A user's class must be constructible as ``cls(**init_kwargs)``; say which keyword
    arguments with ``init_kwargs`` when its ``__init__`` has required parameters.
    """
    import dataclasses

    name = class_name(model)
    if name in _builtin_models():
        config = config if config is not None else getattr(model, "config", None)  # create_run passes none
        return {"class": name, "config": dataclasses.asdict(config) if config is not None else None}
    kwargs = dict(init_kwargs or {})
    try:
        json.dumps(kwargs)
    except TypeError as exc:
        raise RunError(f"model_kwargs={kwargs!r} is not JSON ({exc}); pass numbers, strings, lists, dicts.") from exc
    missing = [
        p.name for p in inspect.signature(type(model).__init__).parameters.values()
        if p.name != "self" and p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in kwargs
    ]
    if missing:
        raise RunError(
            f"{name}.__init__ needs {missing}; pass model_kwargs={{{', '.join(repr(m) + ': ...' for m in missing)}}} "
            "to create_run so the run can rebuild the model from its weights."
        )
    if type(model).__module__ == "__main__":
        raise RunError(
            f"Model class {type(model).__qualname__} is defined in the script being run (__main__), so no "
            "later process can import it; move it into a module or into the integration file."
        )
    return {"class": name, "config": None, "init_kwargs": kwargs}


def save_weights(model: Any, folder: Path) -> None:
    """Write ``model``'s state dict to ``folder/model.safetensors``."""
    from safetensors.torch import save_model

    save_model(model, str(Path(folder) / layout.WEIGHTS))


def import_model_class(name: str, integration: Callable[[], Any]) -> type:
    """The class named ``module.Qualname``; a class from the integration file is found in its module.

    Only called once the caller has settled that this code may run.
    """
    import sys

    import torch

    from samplescope.integration.loader import USER_MODULE_PREFIX

    module_name, _, qualname = name.rpartition(".")
    if module_name.startswith(USER_MODULE_PREFIX):  # defined in the integration file (its path may differ now)
        module = sys.modules[integration().module]
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise RunError(
                f"Model class {name} cannot be imported ({exc}); install its package, or pass the model "
                "with open_run(path, model=MyModel(...))."
            ) from exc
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
        raise RunError(f"{name} recorded in run.json is not an nn.Module class; the run is damaged.")
    return obj


def load_weights(
    run_path: Path, info: dict[str, Any], given: Any, model_class: Callable[[], type],
    trusted: Callable[[], bool],
) -> Any:
    """Build the run's model and load its weights; ``given`` is a module to load them into."""
    spec = info.get("model") or {}
    name = str(spec.get("class") or "")
    weights = Path(run_path) / layout.WEIGHTS
    legacy = Path(run_path) / layout.LEGACY_WEIGHTS
    if not weights.exists() and not legacy.exists():
        raise RunError(f"Run {run_path} has no model weights ({layout.WEIGHTS}); train the run again.")
    if given is not None:
        model = given
    elif name in _builtin_models():
        cls, config_cls = _builtin_models()[name]
        model = cls(config_cls(**(spec.get("config") or {})))
    elif weights.exists():
        model = model_class()(**(spec.get("init_kwargs") or {}))
    else:
        return _legacy_pickle(legacy, name, model_class, trusted)
    if weights.exists():
        from safetensors.torch import load_model

        try:
            load_model(model, str(weights))
        except Exception as exc:  # safetensors raises several kinds for damaged files
            raise RunError(f"{weights} cannot be read into {name} ({exc}); the run is damaged, train it again.") from exc
    else:
        import torch

        try:
            state = torch.load(legacy, map_location="cpu", weights_only=True)
        except Exception as exc:  # a pickle of anything but tensors is refused by weights_only
            raise RunError(f"{legacy} is not a plain state dict ({type(exc).__name__}); the run is damaged.") from exc
        model.load_state_dict(state)
    return model


def _legacy_pickle(path: Path, name: str, model_class: Callable[[], type], trusted: Callable[[], bool]) -> Any:
    """A layout-1 ``create_run`` run: ``model.pt`` is a whole pickled module."""
    import torch

    if not trusted():
        raise TrustError(
            f"{path} is a pickled model (runs made before samplescope stored weights as data); unpickling "
            "runs code from the file. If you trust whoever made the run, pass --trust "
            f"(Python: open_run(path, trust=True)) or run `samplescope trust {path.parent}` once."
        )
    model = torch.load(path, map_location="cpu", weights_only=False)  # the user trusts this file
    if not isinstance(model, torch.nn.Module):
        raise RunError(f"{path} holds a {type(model).__name__}, not an nn.Module; the run is damaged.")
    return model
