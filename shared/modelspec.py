"""Model directories: a `model.json` beside the weights. Read by the API (listing, validation) and by the
worker (loading). No torch here."""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.errors import ModelConfigError
from shared.schemas import ModelCard, ModelOut

log = logging.getLogger(__name__)

Task = Literal["text-classification", "image-classification"]
# "noop" answers uniform probabilities without computing: for measuring the queue itself (bench, load tests).
Architecture = Literal["encoder-linear-head", "hf-sequence-classification", "small-cnn", "noop"]


class Coding(BaseModel):
    """A code for a label in a standard terminology (SNOMED CT, ICD-10), as FHIR's Coding has it."""

    model_config = ConfigDict(extra="forbid")

    system: str = Field(min_length=1, description="e.g. http://snomed.info/sct or http://hl7.org/fhir/sid/icd-10")
    code: str = Field(min_length=1)
    display: str | None = None


class Window(BaseModel):
    """A VOI window in the units after the modality LUT (e.g. Hounsfield units for CT)."""

    model_config = ConfigDict(extra="forbid")

    center: float
    width: float = Field(gt=0)


class DicomPolicy(BaseModel):
    """How DICOM input is accepted for an image model: the modalities it was built for and the window used when
    a file carries none ("minmax" stretches the stored range, which suits uncalibrated CR/DX values)."""

    model_config = ConfigDict(extra="forbid")

    modalities: list[str] = Field(min_length=1, description="Modality (0008,0060) values accepted, e.g. CR, DX, OT.")
    default_window: Window | Literal["minmax"] = "minmax"


class ModelSpec(BaseModel):
    """What `model.json` holds. `directory` is filled in when it is read from disk."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
    task: Task
    architecture: Architecture
    labels: list[str] = Field(min_length=2)
    weights: str = Field(description="Weights file (or Hugging Face checkpoint folder) relative to the directory.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    encoder: str | None = Field(
        default=None, description="encoder-linear-head only: 'package:<module>' or a folder relative to the directory."
    )
    config: dict[str, Any] = Field(default_factory=dict, description="Architecture hyper-parameters.")
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    calibration: dict[str, Any] = Field(default_factory=lambda: {"temperature": 1.0})
    abstain_band: tuple[float, float] | None = None
    limits: dict[str, Any] = Field(default_factory=dict)
    codes: dict[str, list[Coding]] = Field(default_factory=dict, description="Terminology codes per label.")
    dicom: DicomPolicy | None = Field(default=None, description="Image models: DICOM input policy (None: refused).")
    card: ModelCard = Field(default_factory=ModelCard)
    directory: Path | None = Field(default=None, exclude=True)

    @field_validator("abstain_band")
    @classmethod
    def _band_in_range(cls, band: tuple[float, float] | None) -> tuple[float, float] | None:
        if band is not None and not 0.0 <= band[0] <= band[1] <= 1.0:
            raise ValueError("abstain_band must be [low, high] with 0 <= low <= high <= 1")
        return band

    @model_validator(mode="after")
    def _encoder_matches_architecture(self) -> ModelSpec:
        if self.architecture == "encoder-linear-head" and not self.encoder:
            raise ValueError("encoder-linear-head needs 'encoder'")
        return self

    @model_validator(mode="after")
    def _codes_name_labels(self) -> ModelSpec:
        unknown = sorted(set(self.codes) - set(self.labels))
        if unknown:
            raise ValueError(f"codes given for labels the model does not have: {unknown}")
        return self

    def codings(self, label: str) -> list[Coding]:
        """The label's terminology codes; empty when none is known."""
        return list(self.codes.get(label, []))

    @property
    def input_kind(self) -> Literal["text", "image"]:
        return "text" if self.task == "text-classification" else "image"

    @property
    def temperature(self) -> float:
        return float(self.calibration.get("temperature", 1.0))

    def weights_path(self) -> Path:
        if self.directory is None:
            raise ModelConfigError(f"model {self.name} has no directory")
        return self.directory / self.weights

    def encoder_path(self) -> Path:
        """The encoder (or checkpoint) folder: 'package:<module>' names an installed package whose
        `get_model_path()` gives it; anything else is relative to the model directory."""
        ref = self.encoder or self.weights
        if ref.startswith("package:"):
            try:
                module = importlib.import_module(ref.removeprefix("package:"))
            except ImportError as exc:
                raise ModelConfigError(f"model {self.name}: encoder package {ref} is not installed") from exc
            return Path(module.get_model_path())
        if self.directory is None:
            raise ModelConfigError(f"model {self.name} has no directory")
        return self.directory / ref

    def to_public(self) -> ModelOut:
        return ModelOut(
            name=self.name, version=self.version, task=self.task, labels=self.labels, sha256=self.sha256,
            limits=self.limits, card=self.card, abstain_band=self.abstain_band, calibration=self.calibration,
        )


def read_spec(directory: Path) -> ModelSpec:
    """Parse `directory/model.json`; any problem is a ModelConfigError naming the file."""
    path = directory / "model.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        spec = ModelSpec.model_validate(raw)
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise ModelConfigError(f"{path}: {exc}") from exc
    return spec.model_copy(update={"directory": directory})


def discover(model_dir: Path) -> dict[str, ModelSpec]:
    """Every valid model directory under `model_dir`, by name. Broken ones are logged and skipped so one bad
    directory does not take the others down."""
    specs: dict[str, ModelSpec] = {}
    for path in sorted(model_dir.glob("*/model.json")):
        try:
            spec = read_spec(path.parent)
        except ModelConfigError as exc:
            log.error("skipping model directory: %s", exc)
            continue
        if spec.name in specs:
            log.error("skipping %s: model name %s already defined", path, spec.name)
            continue
        specs[spec.name] = spec
    return specs


def file_digest(path: Path) -> str:
    """SHA-256 of a weights file, or of every file in a checkpoint folder (sorted by relative name)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode())
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def verify_digest(spec: ModelSpec) -> None:
    """Refuse weights that are not the ones model.json names."""
    actual = file_digest(spec.weights_path())
    if actual != spec.sha256:
        raise ModelConfigError(
            f"model {spec.name}: weights digest {actual} does not match model.json sha256 {spec.sha256}"
        )
