"""Retraining rewrites model.json but keeps its hand-curated sections (terminology codes, DICOM policy)."""

import json
import shutil
from pathlib import Path

from shared.settings import PROJECT_ROOT
from worker.training.common import write_model_dir


def test_codes_and_dicom_policy_survive_a_retrain(tmp_path: Path) -> None:
    directory = tmp_path / "pneumonia-xray"
    shutil.copytree(PROJECT_ROOT / "models" / "pneumonia-xray", directory)
    trained = json.loads((directory / "model.json").read_text())
    expected_codes, expected_dicom = trained.pop("codes"), trained.pop("dicom")  # what training produces lacks them
    spec = write_model_dir(directory, trained)
    written = json.loads((directory / "model.json").read_text())
    assert written["codes"] == expected_codes and written["dicom"] == expected_dicom
    assert spec.dicom is not None and spec.codings("pneumonia")
