"""The allowed range of every numeric option, shared by the CLI and the Python API.

``samplescope train --epochs 0`` and ``train_run(epochs=0)`` are refused by the
same table, with the same range in the message (docs/cli.md lists them too).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
from collections.abc import Callable

from samplescope.errors import ParameterError


@dataclasses.dataclass(frozen=True)
class Range:
    """A number ``kind`` with ``low <= value <= high`` (``low < value`` when ``open_low``)."""

    kind: type[int | float]
    low: float
    high: float | None = None
    open_low: bool = False
    example: str = ""

    def describe(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        low, high = _num(self.low), None if self.high is None else _num(self.high)
        if self.open_low:
            return f"{what} above {low}" + (f" and at most {high}" if high is not None else "")
        return f"{what} from {low} to {high}" if high is not None else f"{what} from {low} up"

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"{value!r} is not a number"
        if self.kind is int and not isinstance(value, numbers.Integral):
            return f"{value!r} is not a whole number"
        if not math.isfinite(float(value)):
            return f"{value!r} is not finite"
        below = value <= self.low if self.open_low else value < self.low
        if below or (self.high is not None and value > self.high):
            return f"{value!r} is out of range"
        return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


#: option (as the Python API spells it) -> its range. The CLI spells it with dashes.
RANGES: dict[str, Range] = {
    "epochs": Range(int, 1, example="8"),
    "batch_size": Range(int, 1, example="128"),
    "lr": Range(float, 0, open_low=True, example="0.004"),
    "threads": Range(int, 1, example="2"),
    "limit": Range(int, 1, example="3000"),
    "seed": Range(int, 0, 2**32 - 1, example="0"),
    "samples": Range(int, 1, example="8"),
    "port": Range(int, 1, 65535, example="8765"),
    "workers": Range(int, 1, example="2"),
    "gpus_per_worker": Range(float, 0, example="1"),
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_option(name: str, value: object, where: str) -> None:
    """Raise ParameterError when ``value`` (None means "the default") is outside ``name``'s range."""
    if value is None:
        return
    spec = RANGES[name]
    problem = spec.problem(value)
    if problem:
        raise ParameterError(
            f"{name}={problem} in {where}; pass {spec.describe()} (for example {name}={spec.example}), "
            "or None for the default."
        )


def arg_type(name: str) -> Callable[[str], int | float]:
    """An argparse ``type=`` that parses ``name``'s value and refuses it outside its range."""
    spec = RANGES[name]

    def parse(text: str) -> int | float:
        try:
            value = spec.kind(text)
        except ValueError:
            value = None
        problem = f"{text!r} is not {'a whole number' if spec.kind is int else 'a number'}" if value is None \
            else spec.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(
                f"{problem}; pass {spec.describe()}, for example {flag(name)} {spec.example}"
            )
        return value

    parse.__name__ = name
    return parse
