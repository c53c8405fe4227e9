"""Which attribution methods apply to which input kind, without importing torch.

The server answers ``/api/run`` at start-up from this (the page greys out what does
not apply and says why); :func:`samplescope.analysis.attribution.applicable_methods`
adds what only the model can tell (an image model with no convolution).
"""

from __future__ import annotations

__all__ = ["methods_for_kind"]


def methods_for_kind(input_kind: str) -> dict[str, str | None]:
    """``{method: None}`` for each method that applies to ``input_kind``, else why it does not."""
    if input_kind == "vector":
        return {
            "gradcam": "Grad-CAM needs a convolution over an image; a vector's features have no spatial layout",
            "integrated_gradients": None,
            "saliency": None,
        }
    if input_kind == "tokens":
        return {
            "gradcam": "Grad-CAM needs a convolution over an image; token inputs have none",
            "integrated_gradients": None,
            "saliency": "token ids are integers, not differentiable; Integrated Gradients goes through the embedding",
        }
    return {"gradcam": None, "integrated_gradients": None, "saliency": None}
