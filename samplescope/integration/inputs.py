"""Input kinds: what a model's input is, so every layer knows how to treat and show it.

``image``
    ``(C, H, W)`` floats, grey (C = 1) or colour (C = 3), any size. Default model:
    the CNN (models/cnn.py); attributions: Grad-CAM, Integrated Gradients, saliency,
    drawn over the picture.
``vector``
    ``(F,)`` floats, e.g. tabular features. Default model: the MLP (models/mlp.py);
    attributions per feature (Integrated Gradients, saliency) drawn as signed bars;
    shown to people as a feature table when the integration has no visualizer.
``tokens``
    ``(T,)`` token ids (integers in ``0..len(vocabulary)-1``; id 0 is padding) with a
    vocabulary. Default model: embedding + mean pooling + linear (models/tokens.py);
    attributions per token through the embedding layer (Integrated Gradients).

The kind is declared with ``@integ.input("x", kind="vector")`` or inferred from
the first encoded sample: 3 axes -> image, 1 axis of integers with a declared
vocabulary -> tokens, 1 axis otherwise -> vector.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from samplescope.errors import IntegrationError

InputKind = Literal["image", "vector", "tokens"]
INPUT_KINDS: tuple[str, ...] = ("image", "vector", "tokens")


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What an input function declared beside its function: kind, feature names, vocabulary."""

    kind: str | None = None
    feature_names: tuple[str, ...] | None = None
    vocabulary: tuple[str, ...] | None = None
    #: the integration said ``kind=`` itself (else it is inferred, see :func:`infer_kind`)
    kind_declared: bool = False

    @classmethod
    def declare(
        cls, name: str, kind: str | None, feature_names: Sequence[str] | None, vocabulary: Sequence[str] | None
    ) -> InputSpec:
        if kind is not None and kind not in INPUT_KINDS:
            raise IntegrationError(f"input {name!r}: kind={kind!r} is not one of {INPUT_KINDS}.")
        if vocabulary is not None and kind not in (None, "tokens"):
            raise IntegrationError(f"input {name!r}: a vocabulary is for kind='tokens', not kind={kind!r}.")
        if feature_names is not None and kind not in (None, "vector"):
            raise IntegrationError(f"input {name!r}: feature names are for kind='vector', not kind={kind!r}.")
        if vocabulary is not None and len(vocabulary) < 2:
            raise IntegrationError(
                f"input {name!r}: the vocabulary has {len(vocabulary)} entries; it needs the padding token "
                "(id 0) and at least one more."
            )
        return cls(
            kind=kind or ("tokens" if vocabulary is not None else None),
            feature_names=tuple(str(f) for f in feature_names) if feature_names is not None else None,
            vocabulary=tuple(str(v) for v in vocabulary) if vocabulary is not None else None,
            kind_declared=kind is not None,
        )


def infer_kind(name: str, sample: Any, spec: InputSpec) -> str:
    """The input kind of input function ``name`` from one encoded sample (no batch axis)."""
    a = np.asarray(sample)
    kind = spec.kind
    if kind is None:
        if a.ndim == 3:
            kind = "image"
        elif a.ndim == 1:
            kind = "tokens" if spec.vocabulary is not None and np.issubdtype(a.dtype, np.integer) else "vector"
        else:
            raise IntegrationError(
                f"input {name!r} encodes shape {a.shape}, which is neither an image (C, H, W) nor a vector (F,); "
                "return x[None] for a grey (H, W) image, x.reshape(-1) for a vector, or declare "
                f"@integ.input({name!r}, kind=...) with one of {INPUT_KINDS}."
            )
    expected = {"image": 3, "vector": 1, "tokens": 1}[kind]
    if a.ndim != expected:
        shape = {"image": "(C, H, W)", "vector": "(F,)", "tokens": "(T,)"}[kind]
        raise IntegrationError(
            f"input {name!r} is declared kind={kind!r}, which takes shape {shape}, but it encodes shape {a.shape}; "
            "fix the input function or the declared kind."
        )
    if kind == "tokens" and spec.vocabulary is None:
        raise IntegrationError(
            f"input {name!r} is kind='tokens' but declares no vocabulary; pass "
            f"@integ.input({name!r}, kind='tokens', vocabulary=[...]) (index 0 is padding)."
        )
    if kind == "vector" and spec.feature_names is not None and len(spec.feature_names) != a.shape[0]:
        raise IntegrationError(
            f"input {name!r} names {len(spec.feature_names)} features but encodes {a.shape[0]} values; "
            "pass one name per value."
        )
    return kind


def describe(kind: str, shape: Sequence[int], spec: InputSpec) -> dict[str, Any]:
    """What ``run.json`` records about the input (``input`` section): data, never code."""
    out: dict[str, Any] = {"kind": kind, "shape": [int(s) for s in shape]}
    if kind == "vector":
        out["features"] = list(spec.feature_names or (f"x{i}" for i in range(int(shape[0]))))
    if kind == "tokens":
        out["vocabulary"] = list(spec.vocabulary or ())
    return out


def kind_of_run(info: dict[str, Any]) -> str:
    """A run's input kind: recorded in ``run.json``, else (older runs) from its input shape."""
    recorded = (info.get("input") or {}).get("kind")
    if recorded in INPUT_KINDS:
        return str(recorded)
    return "vector" if len(info.get("input_shape") or ()) == 1 else "image"


def feature_names(info: dict[str, Any]) -> list[str]:
    """A vector run's feature names (``x0``, ``x1``... when none were declared)."""
    names = (info.get("input") or {}).get("features")
    if names:
        return [str(n) for n in names]
    shape = info.get("input_shape") or [0]
    return [f"x{i}" for i in range(int(np.prod(shape)))]
