"""Real processes: a private redis-server, a Celery worker (`python -m worker`) and the API under gunicorn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.localstack import LocalStack, local_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("stack"), redis_url=redis_url) as running:
        yield running
