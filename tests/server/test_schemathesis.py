"""Schemathesis over the whole OpenAPI document of a real server (``serve()`` in a subprocess).

Every operation is called with examples generated from its schema, and every answer is
checked (``call_and_validate``, every built-in check on): no server error (5xx), the status
is documented, the body matches the documented schema for that status, the content type
and headers are documented, and data the schema allows is accepted. The examples per
operation are bounded (and derandomised, so a failure is a regression, not bad luck).

Hypothesis drives each operation's strategy directly rather than through schemathesis's
pytest plugin, whose lazy-fixture mode does not run under pytest 9.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

#: examples per operation and mode (16 operations)
EXAMPLES = 20


def test_every_operation_conforms_to_the_schema(live_server):
    schema = schemathesis.openapi.from_url(live_server + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 16
    failures: list[str] = []
    calls = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                case.call_and_validate()

            try:
                check()
            except Unsatisfiable:  # no parameters, so no invalid request to make
                assert mode is GenerationMode.NEGATIVE and not operation.query, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - one report per operation
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, f"{len(failures)} failing of {calls} calls:\n\n" + "\n\n".join(failures)
