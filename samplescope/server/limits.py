"""How much one request may ask for. Every limit here is named in the 422 that refuses it.

The bounds that a parameter's schema can carry (page size, k, bins, id range) are in the
OpenAPI document too; the others (series of a map, groups of ``by``, body bytes) are
checked by the handlers and the request guard. Together they bound the work and the
answer of any request: the largest aggregate is ``MAX_GROUPS * MAX_BINS`` rows.
"""

from __future__ import annotations

from samplescope.ids import MAX_SAMPLE_ID  # noqa: F401  (re-exported: the routes' id bound)

#: rows of one /api/samples page (``limit``)
MAX_PAGE = 1000
#: sample ids one /api/selection or /api/samples?ids= request names
MAX_IDS = 100_000
#: sample ids one /api/similar request (similar to a set) names
MAX_SET_IDS = 1000
#: neighbours one similars request returns (``k``)
MAX_K = 200
#: bins of one /api/aggregate (``bins``); also the most values of a grouped (categorical) ``x``
MAX_BINS = 200
#: series of one /api/aggregate: distinct values of ``by``
MAX_GROUPS = 50
#: extra columns one /api/map request adds (``color`` and ``columns``)
MAX_SERIES = 16
#: points one /api/map/viewport answer carries (``limit``); more inside are sampled
MAX_VIEWPORT = 250_000
#: values of a column /api/map/counts counts by
MAX_LEGEND = 1000
#: distinct values are counted exactly for a column that may have fewer than this (the most any
#: limit above allows, plus one), estimated above it (store/serving.distinct_counts)
DISTINCT_EXACT_BELOW = max(MAX_BINS, MAX_GROUPS, MAX_LEGEND) + 1
#: vertices of a lasso in POST /api/selection
MAX_POLYGON = 2000
#: column filters (``?column__op=value``) one /api/samples request applies
MAX_FILTERS = 32
#: tags one run may hold, and saved selections (apart); a new one past this is refused
MAX_ANNOTATIONS = 1000
#: bytes of one request body (POST /api/selection with MAX_IDS ids takes under 1.3 MB)
MAX_BODY_BYTES = 2 * 2**20


def too_many(what: str, got: int, limit: int, name: str, fix: str) -> str:
    """The message of a refused request: the value, the limit and its name, and the fix."""
    return f"{what} is {got:,}; at most {limit:,} are allowed ({name}); {fix}"
