"""Compare view: ``samplescope serve RUN_B --compare RUN_A``. Reads only.

The comparison (``samplescope.compare``) of the served run B against run A is made on the
first request and kept until B is analysed again. Samples are B's sample ids; each also
names its id in A. Without ``--compare`` every route here is a 404 that says how to start one.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from samplescope.compare import STATUSES, Comparison
from samplescope.errors import NotFoundError, ParameterError
from samplescope.server import encoding
from samplescope.server.deps import SampleIdPath, State, SubsetParam
from samplescope.server.limits import MAX_PAGE, MAX_SAMPLE_ID
from samplescope.server.models import ClassValue, HeatmapPublic
from samplescope.server.openapi import errors
from samplescope.server.responses import cached
from samplescope.server.state import HeatmapMethod, ServerState, run_tag

router = APIRouter(prefix="/api/compare", tags=["compare"])

#: what the map is coloured by: the four statuses, samples without a label, and B's samples A lacks
CHANGES = (*STATUSES, "unlabeled", "unmatched")
Status = Literal["fixed", "broken", "still_wrong", "still_right"]
_lock = threading.Lock()


class RunRef(BaseModel):
    name: str
    path: str


class ComparePublic(BaseModel):
    a: RunRef = Field(description="the earlier run (--compare)")
    b: RunRef = Field(description="the served run")
    summary: list[dict[str, Any]] = Field(description="per subset: samples, accuracy_a/b, fixed, broken, "
                                          "still_wrong, mean_loss_a/b, loss_change")  # fmt: skip
    by_label: list[dict[str, Any]] = Field(description="the same counts per class")
    insights: list[dict[str, Any]] = Field(description="A's insights resolved or persisting, B's new ones")
    unmatched: dict[str, int] = Field(description="samples only in one run, or relabelled in B")
    counts: dict[str, int] = Field(description="samples per change, over every subset")
    classes: list[str]
    confusion_change: dict[str, list[list[int]]] = Field(
        description="per subset: B's confusion matrix minus A's (rows: ground truth)")
    a_trust: dict[str, Any] = Field(description="what A's own trust allows (its heatmaps need its code "
                                    "unless stored): trusted, inputs, model, hint")  # fmt: skip


class CompareRow(BaseModel):
    sample_id: int = Field(description="the sample's id in B (the served run)")
    sample_id_a: int
    subset: str
    label: int
    prediction_a: int
    prediction_b: int
    loss_a: float | None
    loss_b: float | None
    loss_change: float | None
    status: str


class CompareRowsPublic(BaseModel):
    data: list[CompareRow]
    count: int = Field(description="rows that match, before offset and limit")


class RunSide(BaseModel):
    prediction: int
    loss: float | None
    correct: bool
    probabilities: list[ClassValue]


class CompareSamplePublic(BaseModel):
    sample_id: int
    sample_id_a: int
    subset: str
    label: int
    status: str
    a: RunSide
    b: RunSide


def comparison(request: Request, state: ServerState) -> Comparison:
    """The served run's comparison with ``--compare`` (made once per analysis of B)."""
    served = request.app.state.samplescope
    path = getattr(served.settings, "compare", None)
    if path is None:
        raise NotFoundError("this server compares nothing; start it with `samplescope serve RUN_B --compare RUN_A`")
    with _lock:
        cached = getattr(request.app.state, "comparison", None)
        if cached is None or cached[0] is not state:
            from samplescope.compare import compare
            from samplescope.run import open_run

            if cached is not None:
                cached[1].a.close()
            cmp = compare(open_run(Path(path)), state.run)
            cmp.samples = cmp.samples.sort_values("sample_id_b", kind="stable").reset_index(drop=True)
            cached = (state, cmp)
            request.app.state.comparison = cached
        return cached[1]


class CompareStatusPublic(BaseModel):
    enabled: bool = Field(description="whether this server was started with --compare RUN_A")
    a: str | None = Field(description="the folder of RUN_A, or null")


@router.get("/status", response_model=CompareStatusPublic, responses=errors())
def compare_status(request: Request) -> CompareStatusPublic:
    """Whether the Compare routes answer (the page asks this first; it makes no comparison)."""
    path = getattr(request.app.state.samplescope.settings, "compare", None)
    return CompareStatusPublic(enabled=path is not None, a=None if path is None else str(path))


def _run_ref(run: Any) -> RunRef:
    return RunRef(name=run.name, path=str(run.path))


@router.get("", response_model=ComparePublic, responses=errors(404))
def compare_summary(state: State, request: Request) -> ComparePublic:
    """What B fixed, broke and kept against A: per subset, per class, the insights, the confusion change."""
    cmp = comparison(request, state)
    counts = cmp.samples["status"].value_counts()
    n_b = state.n
    return ComparePublic(
        a=_run_ref(cmp.a), b=_run_ref(cmp.b),
        summary=_records(cmp.summary), by_label=_records(cmp.by("label")), insights=_records(cmp.insights),
        unmatched={k: int(v) for k, v in cmp.unmatched.items()},
        counts={**{c: int(counts.get(c, 0)) for c in CHANGES[:-1]}, "unmatched": n_b - len(cmp.samples)},
        classes=list(cmp.a.classes),
        confusion_change={s: cmp.confusion_change(s).tolist() for s in state.subsets if s != "unlabeled"},
        a_trust=cmp.a.trust_status(),
    )  # fmt: skip


@router.get(
    "/map",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "map payload"}, **errors(404, 422)},
)
def compare_map(
    state: State,
    request: Request,
    every: Annotated[bool, Query(description="every sample, by sample id, even when /api/map sends an overview "
                                 "(the page colours the samples a zoomed-in viewport adds from it)")] = False,
) -> Response:
    """One column, ``change`` (fixed, broken, still_wrong, still_right, unlabeled, unmatched), for the
    rows of /api/map (every sample, or the same overview), in the map payload's format: one byte
    a sample."""
    cmp = comparison(request, state)
    codes = np.full(state.n, CHANGES.index("unmatched"), np.int64)
    status = cmp.samples["status"].map({c: i for i, c in enumerate(CHANGES)}).to_numpy(np.int64)
    codes[cmp.samples["sample_id_b"].to_numpy(np.int64)] = status
    rows = None if every else state.map_rows
    if rows is not None:
        codes = codes[rows]
    arr, entry = encoding.encode_column(pd.Series(codes), "categorical", list(CHANGES))
    meta = {"ids": "rows" if rows is None else "sample_id", "total": state.n, "a": cmp.a.name}
    return Response(encoding.pack_columns({"change": (arr, entry)}, len(codes), meta),
                    media_type="application/octet-stream")  # fmt: skip


@router.get("/samples", response_model=CompareRowsPublic, responses=errors(404, 422))
def compare_samples(
    state: State,
    request: Request,
    subset: SubsetParam,
    status: Annotated[Status, Query(description="which change")] = "fixed",
    limit: Annotated[int, Query(ge=0, le=MAX_PAGE, description=f"rows, at most {MAX_PAGE}")] = 60,
    offset: Annotated[int, Query(ge=0, le=MAX_SAMPLE_ID)] = 0,
) -> CompareRowsPublic:
    """The samples of one change, largest loss change first (fixed: the most improved first)."""
    frame = comparison(request, state).samples
    part = frame[frame["status"] == status]
    if subset:
        part = part[part["subset"] == subset]
    ascending = status == "fixed"  # fixed: the loss fell most; broken, still wrong: rose most
    part = part.sort_values(["loss_change", "sample_id_b"], ascending=[ascending, True], na_position="last")
    page = part.iloc[offset : offset + limit]
    return CompareRowsPublic(data=[_row(r) for r in page.itertuples()], count=len(part))


def _row(r: Any) -> CompareRow:
    return CompareRow(
        sample_id=int(r.sample_id_b), sample_id_a=int(r.sample_id_a), subset=str(r.subset), label=int(r.label),
        prediction_a=int(r.prediction_a), prediction_b=int(r.prediction_b), loss_a=_num(r.loss_a),
        loss_b=_num(r.loss_b), loss_change=_num(r.loss_change), status=str(r.status),
    )  # fmt: skip


@router.get("/samples/{sample_id}", response_model=CompareSamplePublic, responses=errors(404, 422))
def compare_sample(state: State, request: Request, sample_id: SampleIdPath) -> CompareSamplePublic:
    """One sample of B beside itself in A: both predictions, losses and class probabilities."""
    cmp = comparison(request, state)
    r = _match(cmp, state, sample_id)
    return CompareSamplePublic(
        sample_id=sample_id, sample_id_a=int(r["sample_id_a"]), subset=str(r["subset"]), label=int(r["label"]),
        status=str(r["status"]), a=_side(cmp.a, int(r["sample_id_a"])), b=_side(cmp.b, sample_id),
    )  # fmt: skip


# --- run A's heatmaps, beside B's in the sample view ---------------------------------------------


def _match(cmp: Comparison, state: ServerState, sample_id: int) -> pd.Series:
    """The comparison's row of B's sample ``sample_id`` (404 when A has no such sample)."""
    state.rows_of([sample_id])
    frame = cmp.samples
    at = int(np.searchsorted(frame["sample_id_b"].to_numpy(), sample_id))
    if at >= len(frame) or int(frame["sample_id_b"].iat[at]) != sample_id:
        raise NotFoundError(f"sample {sample_id} of {cmp.b.name!r} has no match in {cmp.a.name!r} (subset and key)")
    return frame.iloc[at]


def _a_job(request: Request, state: ServerState, sample_id: int, target: str | None) -> tuple[Comparison, tuple]:
    """The comparison, and the arguments of a heatmap-lane job for A's heatmap of B's sample
    ``sample_id``: A's folder, the sample's id in A and the class (``target``, else A's prediction)."""
    cmp = comparison(request, state)
    row = _match(cmp, state, sample_id)
    if "prediction" not in state.class_columns:
        raise NotFoundError(f"A's heatmaps are shown for classification runs; this run's task is {state.task.name}")
    cls = int(row["prediction_a"]) if target in (None, "") else state.class_index(target)
    return cmp, (str(cmp.a.path), int(row["sample_id_a"]), cls)


ATarget = Annotated[str | None, Query(description="class index or name; default: A's prediction")]
AMethod = Annotated[HeatmapMethod, Query(description="attribution method")]


@router.get(
    "/samples/{sample_id}/heatmap.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "a PNG picture"}, **errors(404, 422, 503)},
)
async def compare_heatmap_png(
    state: State, request: Request, sample_id: SampleIdPath, target: ATarget = None, method: AMethod = "gradcam"
) -> Response:
    """Run A's heatmap of B's sample ``sample_id`` (its match in A), as /api/samples/{id}/heatmap.png
    draws B's: the same picture, so the page lays them side by side. Reads A only; made from A's
    stored heatmaps, or with A's code when A is trusted (samplescope/trust.py), never otherwise."""
    cmp, job = _a_job(request, state, sample_id, target)
    body = await state.heatmap_lane.run(a_heatmap_png, state, *job, method)
    etag = f"{state.tag}-{run_tag(cmp.a)}-hm-{sample_id}-{job[2]}-{method}"
    return cached(request, body, "image/png", etag, state.settings.image_max_age)


@router.get("/samples/{sample_id}/heatmap.json", response_model=HeatmapPublic, responses=errors(404, 422, 503))
async def compare_heatmap_json(
    state: State, request: Request, sample_id: SampleIdPath, target: ATarget = None, method: AMethod = "gradcam"
) -> HeatmapPublic:
    """Run A's raw heatmap values of B's sample ``sample_id`` (a vector's or tokens' one value each)."""
    cmp, (path, sid_a, cls) = _a_job(request, state, sample_id, target)
    h = await state.heatmap_lane.run(a_heatmap, state, path, sid_a, cls, method)
    return HeatmapPublic.of(
        sample_id, cls, method, h,
        labels=None if h.ndim == 2 else cmp.a.attribution_labels(sid_a),
        padding=None if h.ndim == 2 else cmp.a.attribution_padding(sid_a),
    )  # fmt: skip


#: run A opened in this process (the server's own, or a heavy lane's worker), by folder
_runs_a: dict[str, Any] = {}
_runs_a_lock = threading.Lock()


def a_heatmap(state: ServerState, path: str, sample_id_a: int, target: int, method: HeatmapMethod) -> np.ndarray:
    """A heatmap of run A (a heavy-lane job: ``state`` is B's, which sends the job to B's worker).

    A is opened without trust, so only its own trust (the trust list, a built-in integration)
    lets its code run; without it only A's stored heatmaps are read, and anything else is
    the RunError that says how to trust A."""
    with _runs_a_lock:
        run = _runs_a.get(path)
        if run is None:
            from samplescope.run import open_run

            run = _runs_a[path] = open_run(Path(path))
    return np.asarray(run.heatmap(sample_id_a, target, method=method), np.float32)


def a_heatmap_png(state: ServerState, path: str, sample_id_a: int, target: int, method: HeatmapMethod) -> bytes:
    """:func:`a_heatmap` as the overlay PNG that B's heatmap.png is (the size of B's picture)."""
    heatmap = a_heatmap(state, path, sample_id_a, target, method)
    if heatmap.ndim != 2:
        raise ParameterError(
            f"heatmap.png draws over an image, and this run's inputs are {state.run.input_kind}s; ask "
            "/api/compare/samples/{id}/heatmap.json for A's attributions (one value per feature or token)."
        )
    return encoding.png_bytes(encoding.heatmap_rgba(heatmap, state.image_shape))


def _side(run: Any, sample_id: int) -> RunSide:
    columns = run.db.columns()
    probs = [c for c in columns if c.startswith("prob_") and c[5:].isdigit()]
    row = run.samples(columns=["prediction", "loss", "correct", *probs], where=[("sample_id", "==", sample_id)])
    r = row.iloc[0]
    classes = run.classes
    values = [ClassValue(class_index=int(c[5:]), name=classes[int(c[5:])] if int(c[5:]) < len(classes) else c[5:],
                         value=_num(r[c])) for c in sorted(probs, key=lambda c: int(c[5:]))]  # fmt: skip
    return RunSide(prediction=int(r["prediction"]), loss=_num(r["loss"]), correct=bool(r["correct"]),
                   probabilities=values)  # fmt: skip


def _num(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    from samplescope.server.state import jsonable

    return jsonable(frame.to_dict("records"))


def check_comparable(path: Path, run: Any) -> None:
    """Fail before serving when ``--compare`` names no run, or a run of another integration."""
    from samplescope.errors import RunError
    from samplescope.run import open_run

    other = open_run(path)
    try:
        if other.info["integration"].get("name") != run.info["integration"].get("name"):
            raise RunError(
                f"--compare {path}: that run is of integration {other.info['integration'].get('name')!r}, the "
                f"served one of {run.info['integration'].get('name')!r}; compare two runs of the same dataset."
            )
        other.require_analysis()
    finally:
        other.close()
