"""docker-compose.yml stays valid (no engine needed for `config`)."""

import shutil
import subprocess

import pytest

from shared.settings import PROJECT_ROOT


def _compose() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], check=False, capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.skip("neither `docker compose` nor `docker-compose` is installed")


def test_compose_file_is_valid_and_has_the_services() -> None:
    result = subprocess.run([*_compose(), "config", "--services"], check=False, cwd=PROJECT_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"redis", "postgres", "migrate", "api", "worker", "webhooks", "flower"}


def test_schema_migrations_run_once_before_the_api_starts() -> None:
    import yaml

    services = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]
    assert services["migrate"]["command"] == ["medq", "db", "upgrade"]
    assert services["api"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
