import json
import shutil
from pathlib import Path

import pytest

from shared.errors import ModelConfigError
from shared.modelspec import discover, file_digest, read_spec, verify_digest
from shared.settings import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "models"


def test_shipped_models_are_discovered_with_contract_labels() -> None:
    specs = discover(SHIPPED)
    assert specs["disease-category"].labels == [
        "neoplasms", "digestive system diseases", "nervous system diseases", "cardiovascular diseases",
        "general pathological conditions",
    ]
    assert specs["pneumonia-xray"].labels == ["normal", "pneumonia"]
    assert specs["pneumonia-xray"].input_kind == "image"
    for spec in specs.values():
        verify_digest(spec)


def test_digest_mismatch_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pneumonia-xray"
    shutil.copytree(SHIPPED / "pneumonia-xray", target)
    with (target / "model.safetensors").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelConfigError, match="does not match"):
        verify_digest(read_spec(target))


def test_broken_model_json_is_skipped_not_fatal(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED / "pneumonia-xray", tmp_path / "good")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text("{not json")
    with pytest.raises(ModelConfigError, match=r"model\.json"):
        read_spec(tmp_path / "bad")
    assert list(discover(tmp_path)) == ["pneumonia-xray"]


def test_invalid_fields_are_reported(tmp_path: Path) -> None:
    raw = json.loads((SHIPPED / "pneumonia-xray" / "model.json").read_text())
    raw["version"] = "v1"
    raw["abstain_band"] = [0.9, 0.1]
    (tmp_path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(ModelConfigError) as info:
        read_spec(tmp_path)
    assert "version" in str(info.value) and "abstain_band" in str(info.value)


def test_folder_digest_covers_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"1")
    first = file_digest(tmp_path)
    (tmp_path / "a").rename(tmp_path / "b")
    assert file_digest(tmp_path) != first
