"""Load an integration from a file path or a built-in name."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from samplescope.errors import IntegrationError

#: Built-in integrations, by the name the CLI accepts.
BUILTINS = {
    "mnist": "samplescope.integrations.mnist",
    "digits": "samplescope.integrations.digits",
    "breast_cancer": "samplescope.integrations.breast_cancer",
    "diabetes": "samplescope.integrations.diabetes",
    "mnist_pairs": "samplescope.integrations.mnist_pairs",
}
#: ``KIND:ARGUMENT`` specs for integrations without code (``--integration image-folder:PATH``)
NO_CODE = ("image-folder",)
#: Integration files are imported as modules named with this prefix.
USER_MODULE_PREFIX = "samplescope_user_integration_"


def load_integration(spec: str | Path, *, expected_hash: str | None = None):
    """Load the :class:`~samplescope.Integration` declared in a Python file or built-in module.

    ``spec`` is a built-in name (``"mnist"``), a path to a ``.py`` file, a dotted
    module name, or ``image-folder:PATH`` (:func:`samplescope.integrations.from_image_folder`). The module must define exactly one ``Integration`` at top level
    (or one named ``integration``).
    """
    from samplescope.integration.core import Integration

    text = str(spec)
    kind, sep, argument = text.partition(":")
    if sep and kind in NO_CODE:
        from samplescope.integrations import from_image_folder

        if not argument:
            raise IntegrationError(f"--integration {text!r} names no folder; pass image-folder:PATH.")
        return from_image_folder(argument)
    if sep and kind.replace("-", "").isalpha() and len(kind) > 1 and not Path(text).exists():
        raise IntegrationError(
            f"Integration {text!r}: {kind!r} is not a kind of integration without code; use one of "
            f"{', '.join(k + ':PATH' for k in NO_CODE)}, a built-in ({sorted(BUILTINS)}) or a .py file."
        )
    if text in BUILTINS:
        module = importlib.import_module(BUILTINS[text])
    elif text.endswith(".py") or Path(text).exists():
        path = Path(text).resolve()
        if not path.is_file():
            raise IntegrationError(
                f"Integration file {text!r} does not exist. Pass a path to a .py file "
                f"or one of the built-ins: {sorted(BUILTINS)}."
            )
        if expected_hash is not None and source_hash(str(path)) != expected_hash:
            raise IntegrationError(
                f"Integration file {path} changed since the run was made (its SHA-256 differs); "
                "nothing of it was run. Re-train the run, or drop --strict to use the file as it is now."
            )
        name = f"{USER_MODULE_PREFIX}{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise IntegrationError(
                f"Integration file {text!r} failed to import: {type(exc).__name__}: {exc}. "
                "Fix the error (run `python FILE` to see the traceback) and try again."
            ) from exc
    else:
        try:
            module = importlib.import_module(text)
        except ImportError as exc:
            raise IntegrationError(
                f"Integration {text!r} is neither a built-in ({sorted(BUILTINS)}), "
                f"an existing .py file, nor an importable module ({exc})."
            ) from exc

    found = [v for v in vars(module).values() if isinstance(v, Integration)]
    chosen = getattr(module, "integration", None)
    if not isinstance(chosen, Integration):
        unique = list({id(v): v for v in found}.values())
        if len(unique) != 1:
            raise IntegrationError(
                f"Integration module {text!r} defines {len(unique)} Integration objects; "
                "define exactly one, or name the one to use `integration`."
            )
        chosen = unique[0]
    chosen.source = str(Path(module.__file__).resolve()) if getattr(module, "__file__", None) else text
    chosen.module = module.__name__
    return chosen


def source_hash(source: str | None) -> str | None:
    """SHA-256 of an integration's source file, to tell when it changed since a run."""
    if not source or not Path(source).is_file():
        return None
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()
