"""The shipped models beat chance by a wide margin on samples of the kit's data. The thresholds sit well below
the measured figures (model cards), so these tests are stable; they skip where ../shared/data is absent."""

from __future__ import annotations

import csv
import io

import numpy as np
from PIL import Image

from tests.conftest import shared_data
from tests.worker.test_predictors import image_predictor, text_predictor


def test_pneumonia_model_on_val_images() -> None:
    data = np.load(shared_data() / "pneumoniamnist" / "pneumoniamnist-trainval.npz")
    images, labels = data["val_images"][:300], data["val_labels"][:300, 0]
    predictor = image_predictor()
    prepared = []
    for image in images:  # through PNG bytes, as a client would send them
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        prepared.append(predictor.prepare(buf.getvalue(), "image/png"))
    predicted = np.argmax(predictor.predict(prepared), axis=1)
    accuracy = float((predicted == labels).mean())
    assert accuracy > 0.9, accuracy  # card: val accuracy 0.979; always-pneumonia scores 0.74


def test_disease_model_on_abstracts() -> None:
    with (shared_data() / "medical-abstracts" / "train.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:200]
    predictor = text_predictor()
    prepared = [predictor.prepare(r["medical_abstract"].encode(), None) for r in rows]
    probs = [p for i in range(0, len(prepared), 16) for p in predictor.predict(prepared[i : i + 16])]
    predicted = np.argmax(probs, axis=1)
    labels = np.array([int(r["condition_label"]) - 1 for r in rows])
    accuracy = float((predicted == labels).mean())
    # These rows were in the training set (the card's 0.548 is cross-validated; the kit keeps a hidden test split),
    # so this only proves the shipped head and encoder load and answer sensibly: majority class scores 0.33.
    assert accuracy > 0.45, accuracy
