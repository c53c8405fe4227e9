"""Errors samplescope raises on purpose.

Every message names the bad value, where it was found (file, function, sample)
and how to fix it. The CLI prints the message and exits non-zero without a
traceback; the server maps them to 4xx JSON ``{"error", "detail"}``.
"""

from __future__ import annotations


class SamplescopeError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""

    #: HTTP status the server answers with when this error reaches it.
    status_code: int = 400


class DataError(SamplescopeError):
    """A data file is missing, corrupt, or no source could provide it."""


class IntegrationError(SamplescopeError):
    """An integration module is missing, fails to import, or misbehaves."""


class PictureError(IntegrationError):
    """A sample has no picture: its input has a shape no built-in picture draws and the integration
    declares no visualizer, or the visualizer returned something that is not a picture."""


class RunError(SamplescopeError):
    """A run folder is missing, incomplete, or cannot be written."""


class NotFoundError(SamplescopeError):
    """A sample id, class index, layer or column that does not exist."""

    status_code = 404


class CheckpointError(SamplescopeError):
    """A checkpoint to resume from is missing or does not match the run."""


class TrustError(SamplescopeError):
    """A run names code (an integration file, a model class) that the user has not said they trust."""

    status_code = 403


class ParameterError(SamplescopeError):
    """A parameter value out of range or not one of the allowed choices."""

    status_code = 422


class ConflictError(ParameterError):
    """A name that is already taken (a tag or saved selection of that name exists)."""

    status_code = 409


class RequestRefusedError(SamplescopeError):
    """A request from a host or page other than this server's own (DNS rebinding, cross-site)."""

    status_code = 403


class BusyError(SamplescopeError):
    """The server is at its limit of heavy requests, or one ran past its time limit."""

    status_code = 503
