"""Which device the model runs on: ``--device auto|cpu|cuda|cuda:N|mps``.

``auto`` is the first CUDA device when there is one, else the CPU (MPS is used only
when asked for: some operators still fall back to the CPU there). A device this
machine does not have is a one-line error naming the ones it has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from samplescope.errors import ParameterError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def available_devices() -> list[str]:
    """The devices torch can use here, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` for ``spec``; ParameterError when this machine has no such device."""
    import torch

    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ParameterError(f"--device {spec!r} is not a device; choose {DEVICE_CHOICES}.") from None
    have = available_devices()
    if device.type == "cuda":
        index = 0 if device.index is None else device.index
        if f"cuda:{index}" not in have:
            raise ParameterError(
                f"--device {spec!r}: this machine has no CUDA device {index} (torch sees: {', '.join(have)}); "
                "use --device cpu or auto."
            )
        return torch.device("cuda", index)
    if device.type == "mps" and "mps" not in have:
        raise ParameterError(f"--device {spec!r}: MPS is not available here (torch sees: {', '.join(have)}).")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ParameterError(f"--device {spec!r} is not supported; choose {DEVICE_CHOICES}.")
    return device
