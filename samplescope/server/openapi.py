"""The OpenAPI document: the error body for every status a route answers, and the run's values.

Routes declare their errors with :func:`errors` (``responses=errors(404, 422)``); every
route also answers 403 (the request guard) and 400 (a damaged run), so those are added
to every operation. :func:`describe_run` then writes what is known once the run is open
into the parameters: the subsets, class names and indices, and the column names each
parameter takes, as enums (or a pattern, for comma lists), so a client or a fuzzer can
tell a valid request from the schema alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from samplescope.server.deps import IDS_PATTERN, NONEMPTY_IDS_PATTERN
from samplescope.server.limits import MAX_SERIES
from samplescope.server.models import ErrorPublic

if TYPE_CHECKING:
    from samplescope.server.reload import ServedRun
    from samplescope.server.state import ServerState

DESCRIPTIONS = {
    400: "the run cannot answer: a file of it is missing or damaged (the detail names it)",
    403: "refused: a Host or Origin other than this server's own, or the run's code is not trusted",
    404: "no such sample, class or path",
    409: "the name is taken: a tag or saved selection of that name exists",
    422: "a parameter is malformed, not an allowed value, or over a limit (the detail names it)",
    503: "the server is busy with heavy requests, or this one ran past its time limit; retry",
}
#: answered by every route: the guard's 403 and a damaged run's 400
ALWAYS = (400, 403)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: ErrorPublic under each status code."""
    return {c: {"model": ErrorPublic, "description": DESCRIPTIONS[c]} for c in (*ALWAYS, *codes)}


def install(app: FastAPI, served: ServedRun) -> None:
    """Make ``app.openapi()`` return the document with the run's values filled in (made again
    when a re-analysis changed the run)."""
    made_for: list[str] = []

    def openapi() -> dict[str, Any]:
        state = served.current()
        if app.openapi_schema is None or made_for != [state.tag]:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            _add_bodies(schema)
            describe_run(schema, state)
            app.openapi_schema = schema
            made_for[:] = [state.tag]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe_run(schema: dict[str, Any], state: ServerState) -> None:
    """Enums and patterns for the parameters whose values the run fixes (in place)."""
    values = run_values(state)
    for path, ops in schema.get("paths", {}).items():
        for op in ops.values():
            for param in op.get("parameters", []):
                key = (path, param["name"])
                found = values.get(key) or values.get(("*", param["name"]))
                if found is not None:
                    param["schema"] = {**found, "title": param["schema"].get("title", "")}
    filters = schema.get("components", {}).get("schemas", {}).get("MapFilterPublic")
    if filters is not None:  # the selection body's map filters take the run's values too
        props = filters["properties"]
        for name, found in (
            ("subset", values[("*", "subset")]),
            ("fcol", values[("*", "fcol")]),
            ("ccol", values[("*", "ccol")]),
        ):
            props[name] = {"anyOf": [found, {"type": "null"}], "default": None}
    _drop_unused_components(schema)


def _add_bodies(schema: dict[str, Any]) -> None:
    """The request bodies declared by ``$ref`` (POST /api/selection), with their parts."""
    from samplescope.server.models import ShapeQuery

    body = ShapeQuery.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(body.pop("$defs", {}))
    components["ShapeQuery"] = body


def run_values(state: ServerState) -> dict[tuple[str, str], dict[str, Any]]:
    """``(path or "*", parameter) -> schema`` for the parameters the run fixes."""
    columns = list(state.kinds)
    class_values = _unique([*state.classes, *map(str, range(len(state.classes)))])
    numeric = [c for c, k in state.kinds.items() if k in ("numeric", "bool")]
    # "" is the same as leaving an optional parameter out, so its enum or pattern takes it
    # label and prediction name a class only under classification (a regression target is a
    # number, a multi-label set a text such as "3+7"; samplescope/tasks)
    by_class = "label" in state.class_columns
    outputs = _unique(map(str, range(state.task.output_width(state.classes))))
    return {
        ("*", "subset"): _enum(["", *state.subsets, "all"]),
        ("*", "target"): _enum(["", *(class_values if by_class else outputs)]),
        **({("*", "label"): _enum(class_values), ("*", "prediction"): _enum(class_values)} if by_class else {}),
        ("/api/map", "color"): _enum(["", *columns]),
        ("/api/map", "columns"): _list_pattern(columns, most=MAX_SERIES - 1),  # + color
        ("/api/map/viewport", "color"): _enum(["", *columns]),
        ("/api/map/viewport", "columns"): _list_pattern(columns, most=MAX_SERIES - 1),
        ("/api/map/counts", "column"): _enum(state.legend_columns()),
        ("*", "fcol"): _enum(["", *[c for c, k in state.kinds.items() if k == "numeric"]]),
        ("*", "ccol"): _enum(["", *columns]),
        ("/api/samples", "sort"): _enum(["", *columns]),
        ("/api/samples", "columns"): _list_pattern(columns, star=True),
        ("/api/aggregate", "x"): _enum(state.aggregate_x_columns()),
        ("/api/aggregate", "y"): _enum(_unique([*numeric, "accuracy", "count"])),
        ("/api/aggregate", "by"): _enum(["", *state.aggregate_by_columns()]),
        ("/api/samples", "ids"): {"type": "string", "pattern": IDS_PATTERN},
        ("/api/selection", "ids"): {"type": "string", "pattern": IDS_PATTERN},
        ("/api/similar", "ids"): {"type": "string", "pattern": NONEMPTY_IDS_PATTERN},
    }


def _enum(values: Sequence[str]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def _list_pattern(
    names: Sequence[str], most: int | None = None, star: bool = False
) -> dict[str, Any]:
    """A comma-separated list of ``names`` (at most ``most``), as a regular expression."""
    one = "(?:" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + ")"
    repeat = "*" if most is None else f"{{0,{most - 1}}}"
    body = f"{one}(?:,{one}){repeat}"
    pattern = f"^(?:\\*|{body})?$" if star else f"^(?:{body})?$"  # "": no more columns
    return {"type": "string", "pattern": pattern}


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _drop_unused_components(schema: dict[str, Any]) -> None:
    """FastAPI lists its own 422 body models even when no route uses them any more."""
    components = schema.get("components", {}).get("schemas", {})
    text = repr(schema.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if name in components and f"/{name}'" not in text:
            del components[name]
