"""Pydantic models of what crosses HTTP; nothing inside the package uses them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, RootModel

from samplescope.server.limits import MAX_IDS, MAX_POLYGON, MAX_SAMPLE_ID

#: The largest id the schema states: the largest double below 2**63, so that a client that
#: writes its numbers as doubles cannot round a valid id up past the server's 2**63 - 1.
SCHEMA_MAX_ID = 2**63 - 1024


def _json_integer(value: object) -> object:
    """A JSON integer: ``3`` or ``3.0`` (JSON Schema's integers); never ``true`` or ``"3"``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # strict validation refuses bools, strings and fractions


def _sample_id_range(value: int) -> int:
    if not 0 <= value <= MAX_SAMPLE_ID:
        raise ValueError(f"{value} is not a sample id; ids are integers 0 to 2**63 - 1")
    return value


#: A sample id in a JSON body: a non-negative 64-bit integer (``false``, ``"1"`` and ``1.5``
#: are refused; ids above 2**63 - 1 too).
SampleId = Annotated[
    int,
    BeforeValidator(_json_integer),
    AfterValidator(_sample_id_range),
    Field(strict=True, json_schema_extra={"minimum": 0, "maximum": SCHEMA_MAX_ID}),
]


class ErrorPublic(BaseModel):
    """The body of every error the API answers."""

    error: str = Field(description="the error's class name, e.g. NotFoundError")
    detail: str = Field(description="one line: what was wrong, where, and how to fix it")


class ColumnPublic(BaseModel):
    name: str
    kind: Literal["numeric", "categorical", "bool"]


class SubsetPublic(BaseModel):
    name: str
    count: int
    accuracy: float | None
    mean_loss: float | None


class TrustPublic(BaseModel):
    trusted: bool
    inputs: bool = Field(description="sample images and inputs (the integration's code) are available")
    model: bool = Field(description="the model class may be imported (new heatmaps)")
    hint: str | None = Field(description="what needs trust and how to grant it; null when trusted")


class MapInfoPublic(BaseModel):
    sampled: bool = Field(
        description="true when the run is larger than full_max: GET /api/map sends a density-aware "
        "overview (with sample_id) and /api/map/viewport every sample of a rectangle"
    )
    full_max: int = Field(description="runs of at most this many samples send their whole map")
    overview_points: int = Field(description="points of the overview when sampled")
    viewport_points: int = Field(description="most points one /api/map/viewport answer carries")


class TaskPublic(BaseModel):
    """What the run's labels are, and so which views apply (samplescope/tasks)."""

    name: str = Field(description="classification, regression or multilabel")
    views: list[str] = Field(description="the task's views: confusion, per_label, regression")
    target: str | None = Field(None, description="regression: what the target is called")
    error: str | None = Field(None, description="what counts as an error, in words")


class RunPublic(BaseModel):
    name: str
    path: str
    classes: list[str]
    subsets: list[SubsetPublic]
    count: int
    columns: list[ColumnPublic]
    class_columns: list[str] = Field(description="columns holding a class index (an index into classes)")
    latent_layer: str | None
    has_map: bool
    map: MapInfoPublic
    info: dict[str, Any]
    trust: TrustPublic = Field(description="which features the run's code (not trusted by default) allows")
    task: TaskPublic | None = None
    input_kind: str = Field("image", description="image, vector or tokens (how inputs and heatmaps are shown)")
    attribution: dict[str, str | None] = Field(
        default_factory=dict, description="heatmap method -> null when it applies to this run, else why it does not"
    )
    pictures: str | None = Field(
        None, description="null when samples have pictures (image.png), else why not: an input shape nothing draws"
    )


class SamplePublic(BaseModel):
    """One table row; columns asked for with ``columns=`` come as extra fields."""

    model_config = ConfigDict(extra="allow")

    sample_id: int
    subset: str
    index: int | None = None
    label: int | float | str | None = Field(
        None, description="ground truth: a class index, a regression target, or a multi-label set as text ('3+7')"
    )
    label_name: str | None = None
    prediction: int | float | str | None = Field(None, description="the model's answer, in the label's form")
    prediction_name: str | None = None
    loss: float | None = None
    confidence: float | None = None
    margin: float | None = None
    correct: bool | None = None


class SamplesPublic(BaseModel):
    data: list[SamplePublic]
    count: int = Field(description="rows that match, before offset and limit")


class ClassValue(BaseModel):
    class_index: int
    name: str
    value: float | None


class SampleDetail(BaseModel):
    sample_id: int
    subset: str
    row: dict[str, Any] = Field(description="every column of the sample")
    probabilities: list[ClassValue]
    centroid_distances: list[ClassValue]
    nearest_centroid: int | None
    image_url: str


class SimilarPublic(BaseModel):
    query: list[int]
    data: list[dict[str, Any]]
    count: int


class SelectionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[SampleId] = Field(
        max_length=MAX_IDS, description=f"sample ids of the selection, at most {MAX_IDS:,}"
    )


def _json_number(value: object) -> object:
    """A JSON number: ``true`` and ``"3"`` are refused (lax validation took ``true`` as 1.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")  # noqa: TRY004 (pydantic turns only ValueError into a 422)
    return float(value)


FiniteFloat = Annotated[float, BeforeValidator(_json_number), Field(allow_inf_nan=False)]


class MapFilterPublic(BaseModel):
    """What the map shows (the page's filters): only samples matching all of these count."""

    model_config = ConfigDict(extra="forbid")

    subset: str | None = Field(None, description="train, validation, ... (null, '' or all: every subset)")
    fcol: str | None = Field(None, description="a numeric column that fmin and fmax bound")
    fmin: FiniteFloat | None = None
    fmax: FiniteFloat | None = None
    ccol: str | None = Field(None, description="a column whose legend value cval is shown alone")
    cval: str | None = Field(None, description="the legend value: a class name, true/false, or a value as text")


class BoxSelection(BaseModel):
    """Every sample inside a rectangle of the map (edges included), not only the drawn ones."""

    model_config = ConfigDict(extra="forbid")

    box: Annotated[list[FiniteFloat], Field(min_length=4, max_length=4)] = Field(
        description="x0, x1, y0, y1 in map coordinates (either order)"
    )
    filters: MapFilterPublic = Field(default_factory=MapFilterPublic)


Vertex = Annotated[list[FiniteFloat], Field(min_length=2, max_length=2)]


class PolygonSelection(BaseModel):
    """Every sample inside a lasso (even-odd rule), not only the drawn ones."""

    model_config = ConfigDict(extra="forbid")

    polygon: list[Vertex] = Field(
        min_length=3, max_length=MAX_POLYGON,
        description=f"[x, y] vertices in map coordinates, 3 to {MAX_POLYGON:,}",
    )  # fmt: skip
    filters: MapFilterPublic = Field(default_factory=MapFilterPublic)


class ShapeQuery(RootModel[SelectionQuery | BoxSelection | PolygonSelection]):
    """A selection by ids, by a box or by a lasso."""
class ClassCount(BaseModel):
    class_index: int
    name: str
    count: int
    errors: int


class SelectionPublic(BaseModel):
    count: int
    accuracy: float | None
    mean_loss: float | None
    class_mix: list[ClassCount]
    subsets: dict[str, int]
    examples: list[int] = Field(description="sample ids with the highest loss, first 60")


class ConfusionPublic(BaseModel):
    subset: str
    classes: list[str]
    matrix: list[list[int]] = Field(description="rows: ground truth, columns: prediction")



class HeadlinePublic(BaseModel):
    name: str = Field(description="the figure's name, e.g. accuracy, mae, exact_match")
    value: float | None = Field(description="its value; null when it is undefined (no labelled samples)")

class MetricsPublic(BaseModel):
    subset: str
    task: str = Field("classification", description="classification, regression or multilabel")
    accuracy: float | None = Field(description="classification: top-1 accuracy; other tasks: null")
    mean_loss: float | None
    per_class: list[dict[str, Any]] = Field(description="classification: one row per class")
    summary: dict[str, float | None] = Field(
        default_factory=dict,
        description="the task's scalar metrics: regression mae, rmse, r2, error_rate and residual quantiles "
        "(residual_q0.05 ...); multi-label exact_match, label_accuracy, micro_f1, macro_f1, ...",
    )
    per_label: list[dict[str, Any]] = Field(
        default_factory=list, description="multi-label: precision, recall, f1, average_precision per label"
    )
    headline: list[HeadlinePublic] = Field(default_factory=list, description="the figures to show first")


class AggregatePublic(BaseModel):
    x: str
    y: str
    by: str | None
    subset: str | None
    kind: Literal["numeric", "categorical", "bool"]
    data: list[dict[str, Any]]


class TablePublic(BaseModel):
    data: list[dict[str, Any]]
    count: int


class HeatmapPublic(BaseModel):
    sample_id: int
    target: int
    method: str
    shape: list[int]
    min: float
    max: float
    values: list[list[float]] | list[float] = Field(
        description="(H, W) for an image; one value per feature (vector) or per token (tokens)"
    )
    labels: list[str] | None = Field(None, description="what each value is: feature names, or the sample's tokens")
    padding: list[bool] | None = Field(None, description="tokens: which values are padding (id 0), left out of views")

    @classmethod
    def of(cls, sample_id: int, target: int, method: str, heat: Any, labels: Any = None,
           padding: Any = None) -> HeatmapPublic:
        """The answer for one heatmap array (NaN as 0, values to six decimals)."""
        h = np.nan_to_num(heat)
        return cls(sample_id=sample_id, target=target, method=method, shape=list(h.shape), min=float(h.min()),
                   max=float(h.max()), values=h.astype(float).round(6).tolist(), labels=labels, padding=padding)


class MapCountsPublic(BaseModel):
    column: str
    categories: list[str] = Field(description="the column's values, in the map payload's code order")
    counts: list[int] = Field(description="samples per category, for every sample the filters keep")
    missing: int = Field(description="samples with no value")
    total: int = Field(description="samples the filters keep")


# --- tags and saved selections (routes/annotations.py) ---------------------------------------

#: A tag or selection name over HTTP: 1 to 100 characters with at least one that is not a
#: space, from printable ASCII, Latin-1 and Latin Extended letters, Cyrillic and common CJK
#: (each of them printable, so the store's own check never refuses what the schema allows).
_LETTERS = "\u00a1-\u00ac\u00ae-\u024f\u0400-\u04ff\u4e00-\u9fa5"
NAME_PATTERN = f"^[ -~{_LETTERS}]*[!-~{_LETTERS}][ -~{_LETTERS}]*$"
AnnotationName = Annotated[
    str,
    Field(min_length=1, max_length=100, pattern=NAME_PATTERN,
          description="a tag or selection name, e.g. mislabeled, relabel:7, exclude"),
]  # fmt: skip


class TagPublic(BaseModel):
    name: str
    count: int = Field(description="samples that carry the tag")


class TagsPublic(BaseModel):
    data: list[TagPublic]
    count: int


class TagSamplesPublic(BaseModel):
    name: str
    count: int = Field(description="samples that carry the tag, before offset and limit")
    ids: list[int] = Field(description="their sample ids, sorted")


class TagRequest(BaseModel):
    """Add a tag to (or remove it from) a set of samples: ids, a box or a lasso of the map."""

    model_config = ConfigDict(extra="forbid")

    name: AnnotationName
    samples: ShapeQuery


class RenameRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: AnnotationName
    new_name: AnnotationName


class SelectionSave(BaseModel):
    """Save a named selection with a note."""

    model_config = ConfigDict(extra="forbid")

    name: AnnotationName
    note: str = Field("", max_length=10_000)
    samples: ShapeQuery
    overwrite: bool = Field(False, description="replace a selection of the same name")
    append: bool = Field(False, description="add these samples to the saved selection of this name (a list "
                         f"of more than {MAX_IDS:,} ids is saved in parts)")  # fmt: skip


class SavedSelectionPublic(BaseModel):
    name: str
    note: str
    created: str
    count: int


class SavedSelectionsPublic(BaseModel):
    data: list[SavedSelectionPublic]
    count: int


class SavedSelectionDetail(SavedSelectionPublic):
    ids: list[int] = Field(description="the selection's sample ids, sorted")
