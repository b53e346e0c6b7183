"""Real forward passes with the shipped weights."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pytest
import torch
from PIL import Image

from shared.errors import InvalidInput
from shared.modelspec import discover
from shared.settings import PROJECT_ROOT
from tests.images import jpeg_bytes, png16_bytes, png_bytes
from worker.predictors.base import build_result, calibrated_probabilities
from worker.predictors.image import ImagePredictor
from worker.predictors.imaging import center_square, decode_grayscale, resize
from worker.predictors.text import TextPredictor

CPU = torch.device("cpu")


@cache
def text_predictor() -> TextPredictor:
    return TextPredictor(discover(PROJECT_ROOT / "models")["disease-category"], CPU)


@cache
def image_predictor() -> ImagePredictor:
    return ImagePredictor(discover(PROJECT_ROOT / "models")["pneumonia-xray"], CPU, max_pixels=40_000_000)


def test_text_batch_gives_one_distribution_per_item() -> None:
    texts = ["Glioblastoma multiforme resected; adjuvant temozolomide.",
             "Crohn's disease of the terminal ileum with stricture.",
             "x"]
    probs = text_predictor().predict([text_predictor().prepare(t.encode(), None) for t in texts])
    assert len(probs) == 3
    for row in probs:
        assert len(row) == 5 and abs(sum(row) - 1) < 1e-5 and min(row) >= 0


def test_text_batching_does_not_change_answers() -> None:
    texts = ["Migraine with aura and photophobia.", "Colorectal adenocarcinoma staging " * 30]
    ids = [text_predictor().prepare(t.encode(), None) for t in texts]
    together = text_predictor().predict(ids)
    alone = [text_predictor().predict([i])[0] for i in ids]
    assert np.allclose(together, alone, atol=1e-4)


def test_text_prepare_truncates_to_max_length_and_sizes_by_tokens() -> None:
    ids = text_predictor().prepare(("word " * 1000).encode(), None)
    assert len(ids) == text_predictor().max_length == text_predictor().size_of(ids)


def test_warmup_batches_cover_every_length_bucket() -> None:
    batches = text_predictor().warmup_batches(4)
    assert {len(b[0]) for b in batches} == {16, 64, 128, 256} and {len(b) for b in batches} == {1, 4}
    assert all(len(p) == 2 for p in image_predictor().predict(image_predictor().warmup_batches(3)[1]))


def test_text_prepare_refuses_empty_or_non_utf8() -> None:
    with pytest.raises(InvalidInput):
        text_predictor().prepare(b"  ", None)
    with pytest.raises(InvalidInput):
        text_predictor().prepare(b"\xff\xfe", None)


@pytest.mark.parametrize("data", [png_bytes(), png_bytes((300, 200), "RGB"), png_bytes((5, 3), "RGBA"),
                                  jpeg_bytes(), png16_bytes()])
def test_odd_images_preprocess_to_the_training_shape(data: bytes) -> None:
    prepared = image_predictor().prepare(data, "image/png")
    assert prepared.shape == (28, 28) and prepared.dtype == np.float32 and np.isfinite(prepared).all()
    (probs,) = image_predictor().predict([prepared])
    assert len(probs) == 2 and abs(sum(probs) - 1) < 1e-5


def test_a_huge_radiograph_is_cropped_and_reduced_like_the_training_images() -> None:
    big = np.zeros((2500, 3000), dtype=np.uint8)
    big[:, 250:2750] = 200  # the centre square is bright, the side bands (cropped away) dark
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="PNG")
    prepared = image_predictor().prepare(buf.getvalue(), "image/png")
    spec = image_predictor().spec.preprocessing
    assert prepared.shape == (28, 28)
    assert np.allclose(prepared, (200 / 255 - spec["mean"]) / spec["std"], atol=1e-4)


def test_sixteen_bit_images_use_their_full_range() -> None:
    arr = decode_grayscale(png16_bytes(), max_pixels=10_000)
    assert arr.min() == 0.0 and arr.max() == 1.0


def test_crop_and_resize_keep_the_centre() -> None:
    arr = np.zeros((10, 20), dtype=np.float32)
    arr[:, 5:15] = 1.0
    square = center_square(arr)
    assert square.shape == (10, 10) and square.min() == 1.0
    assert resize(square, 4).shape == (4, 4)


def test_image_bombs_and_garbage_fail_as_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        image_predictor().prepare(b"\x89PNG\r\n\x1a\n garbage", "image/png")
    buf = io.BytesIO()
    Image.new("L", (300, 300)).save(buf, format="PNG")
    with pytest.raises(InvalidInput, match="exceeds"):
        decode_grayscale(buf.getvalue(), max_pixels=1000)


def test_result_scores_are_sorted_sum_to_one_and_flag_the_abstain_band() -> None:
    spec = discover(PROJECT_ROOT / "models")["pneumonia-xray"]
    spec = spec.model_copy(update={"abstain_band": (0.0, 0.6)})
    unsure = build_result(spec, [0.45, 0.55])
    sure = build_result(spec, [0.9, 0.1])
    assert unsure["label"] == "pneumonia" and unsure["indeterminate"] is True
    assert sure["label"] == "normal" and sure["indeterminate"] is False
    assert [s["probability"] for s in sure["scores"]] == [0.9, 0.1]
    assert sure["model_sha256"] == spec.sha256 and sure["model_version"] == spec.version


def test_temperature_flattens_probabilities() -> None:
    logits = torch.tensor([[2.0, 0.0]])
    sharp, = calibrated_probabilities(logits, 1.0)
    flat, = calibrated_probabilities(logits, 4.0)
    assert flat[0] < sharp[0] and abs(sum(flat) - 1) < 1e-6
