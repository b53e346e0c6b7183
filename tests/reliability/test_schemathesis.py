"""Schemathesis against the served /openapi.json on a real API process: at least 1,000 generated requests across
every operation, never a 5xx."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from shared.localstack import LocalStack, local_stack

pytestmark = [pytest.mark.integration, pytest.mark.fault]

CASES = 1200  # spread over the operations; the issue asks for at least 1,000


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # No worker: generated jobs stay queued (nothing to classify), which keeps the machine free for the API.
    # Webhook URLs must resolve: generated host names would wait on DNS, so only the allowlisted loopback passes.
    with local_stack(tmp_path_factory.mktemp("schemathesis"), worker=False,
                     env={"MEDQ_TENANT_MAX_QUEUED": "100000", "MEDQ_TENANT_JOBS_PER_MINUTE": "100000"}) as stack:
        yield stack


def test_no_generated_request_gets_a_5xx(api: LocalStack) -> None:
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]  # an invalid one fails here
    per_operation = max(CASES // (2 * len(operations)), 20)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for operation in operations:  # valid requests, then requests that break the schema on purpose
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _explore(operation.as_strategy(generation_mode=mode), api, per_operation, statuses, failures)
    total = sum(statuses.values())
    print(f"schemathesis: {total} requests, {len(operations)} operations, {dict(sorted(statuses.items()))}")
    assert not failures, failures[:10]
    assert total >= 1000


def _explore(strategy: Any, api: LocalStack, examples: int, statuses: Counter[int], failures: list[str]) -> None:
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        headers = {**(case.headers or {}), "Authorization": f"Bearer {api.key}"}
        headers.pop("Prefer", None)  # a generated wait=60 would only make the run slow
        case.headers = headers
        response = case.call(base_url=api.base_url, timeout=30)
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:300]}")

    run()
