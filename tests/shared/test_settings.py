from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.settings import PROJECT_ROOT, get_settings


def test_defaults_use_a_sqlite_file_under_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDQ_DATABASE_URL", raising=False)
    settings = get_settings()
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'var' / 'medq.db'}"
    assert settings.model_dir == PROJECT_ROOT / "models"


def test_environment_prefix_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDQ_REDIS_URL", "redis://example:6380/2")
    monkeypatch.setenv("MEDQ_MAX_TEXT_CHARS", "123")
    settings = get_settings(model_dir=tmp_path)
    assert settings.redis_url == "redis://example:6380/2"
    assert settings.max_text_chars == 123
    assert settings.model_dir == tmp_path


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDQ_DEVICE", "tpu")
    with pytest.raises(ValidationError):
        get_settings()
