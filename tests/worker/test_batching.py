"""The batcher's contract, with a fixed-weight tiny model (a 2→2 linear layer)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
import torch

from worker.batching import Batcher, BatcherClosed, BatchFailed, BatchPolicy, BatchStats


class TinyModel:
    """Fixed weights; records every batch; can be held at a gate so items pile up deterministically."""

    def __init__(self) -> None:
        self.linear = torch.nn.Linear(2, 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
            self.linear.bias.zero_()
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def predict(self, items: list[str]) -> Sequence[list[float] | Exception]:
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(list(items))
        x = torch.tensor([[float(len(s)), 1.0] for s in items])
        with torch.inference_mode():
            out = self.linear(x).tolist()
        return [ValueError(f"bad item {s}") if s.startswith("bad") else row for s, row in zip(items, out, strict=True)]


def held(model: TinyModel, batcher: Batcher[str, list[float]]) -> None:
    """Occupy the inference thread so what follows queues up behind it."""
    model.gate.clear()
    batcher.submit("hold")
    assert model.entered.wait(5)


def make(model: TinyModel, **policy: float | int | None) -> Batcher[str, list[float]]:
    return Batcher(model.predict, BatchPolicy(**policy), size_of=len)  # type: ignore[arg-type]


def test_outputs_follow_their_inputs() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=8, max_wait_ms=50)
    futures = {s: batcher.submit(s) for s in ["a", "bbb", "cc"]}
    assert {s: f.result(5) for s, f in futures.items()} == {"a": [1.0, 2.0], "bbb": [3.0, 2.0], "cc": [2.0, 2.0]}
    batcher.close()


def test_batches_respect_max_size_and_are_sorted_by_length() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=3, max_wait_ms=0)
    held(model, batcher)
    futures = [batcher.submit(s) for s in ["xxxx", "x", "xxx", "xx", "xxxxx"]]
    model.gate.set()
    for f in futures:
        f.result(5)
    batcher.close()
    assert [len(b) for b in model.batches] == [1, 3, 2]
    for batch in model.batches:
        assert batch == sorted(batch, key=len)


def test_waits_to_fill_up_to_max_wait() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=64, max_wait_ms=300)
    futures = [batcher.submit("x" * i) for i in range(1, 6)]
    for f in futures:
        f.result(5)
    batcher.close()
    assert [len(b) for b in model.batches] == [5]  # all arrived within the wait: one forward


def test_a_lone_item_runs_once_arrivals_stop() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=64, max_wait_ms=10_000, max_gap_ms=10)
    assert batcher.submit("x").result(5) == [1.0, 2.0]  # would hang 10 s without the gap rule
    batcher.close()


def test_a_stream_of_arrivals_keeps_filling_within_the_gap() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=64, max_wait_ms=10_000, max_gap_ms=2_000)
    futures = []
    for i in range(1, 6):
        futures.append(batcher.submit("x" * i))
        threading.Event().wait(0.02)  # each arrival well within the gap of the one before
    for f in futures:
        f.result(15)
    batcher.close()
    assert [len(b) for b in model.batches] == [5]


def test_token_budget_limits_padded_size() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=10, max_wait_ms=0, token_budget=25)
    held(model, batcher)
    futures = [batcher.submit("y" * 10) for _ in range(4)]
    model.gate.set()
    for f in futures:
        f.result(5)
    batcher.close()
    assert [len(b) for b in model.batches[1:]] == [2, 2]  # 3 x 10 padded tokens would exceed 25


def test_an_item_longer_than_the_budget_still_runs_alone() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=10, max_wait_ms=1, token_budget=5)
    assert batcher.submit("z" * 50).result(5) == [50.0, 2.0]
    batcher.close()


def test_most_urgent_first_then_oldest() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=1, max_wait_ms=0)
    held(model, batcher)
    futures = [batcher.submit(name, priority=p) for name, p in
               [("r1", 2), ("u1", 1), ("r2", 2), ("s1", 0), ("u2", 1)]]
    model.gate.set()
    for f in futures:
        f.result(5)
    batcher.close()
    assert [b[0] for b in model.batches[1:]] == ["s1", "u1", "u2", "r1", "r2"]


def test_stat_items_wait_less() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=64, max_wait_ms=10_000, stat_max_wait_ms=0)
    assert batcher.submit("s", priority=0).result(5) == [1.0, 2.0]  # would hang 10 s at routine wait
    batcher.close()


def test_a_failing_item_fails_alone() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=8, max_wait_ms=100)
    good, bad = batcher.submit("good"), batcher.submit("bad!")
    assert good.result(5) == [4.0, 2.0]
    with pytest.raises(ValueError, match="bad item"):
        bad.result(5)
    batcher.close()


def test_wrong_output_count_fails_the_whole_batch() -> None:
    def short(items: list[str]) -> list[list[float]]:
        return [[1.0, 0.0]] * (len(items) - 1)

    batcher: Batcher[str, list[float]] = Batcher(short, BatchPolicy(max_batch_size=4, max_wait_ms=100))
    futures = [batcher.submit(s) for s in "abc"]
    for f in futures:
        with pytest.raises(BatchFailed, match="2 outputs for 3 inputs"):
            f.result(5)
    batcher.close()


def test_a_raising_predict_fails_every_item_with_batch_failed() -> None:
    def boom(items: list[str]) -> list[list[float]]:
        raise RuntimeError("CUDA out of memory")

    batcher: Batcher[str, list[float]] = Batcher(boom, BatchPolicy(max_batch_size=4, max_wait_ms=100))
    futures = [batcher.submit(s) for s in "ab"]
    for f in futures:
        with pytest.raises(BatchFailed, match="out of memory") as info:
            f.result(5)
        assert isinstance(info.value.__cause__, RuntimeError)
    batcher.close()


def test_close_drains_what_is_queued_then_refuses() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=2, max_wait_ms=0)
    held(model, batcher)
    futures = [batcher.submit(s) for s in ["a", "b", "c"]]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    model.gate.set()
    closer.join(10)
    assert all(f.result(0) for f in futures)
    with pytest.raises(BatcherClosed):
        batcher.submit("late")


def test_stats_report_padding() -> None:
    seen: list[BatchStats] = []
    model = TinyModel()
    batcher = Batcher(model.predict, BatchPolicy(max_batch_size=4, max_wait_ms=200), size_of=len, on_batch=seen.append)
    for f in [batcher.submit("a"), batcher.submit("aaaa")]:
        f.result(5)
    batcher.close()
    assert [(s.size, s.real_tokens, s.padded_tokens) for s in seen] == [(2, 5, 8)]


def test_batches_group_similar_lengths_around_the_oldest_item() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=3, max_wait_ms=0)
    held(model, batcher)
    texts = ["m" * 50, "s" * 2, "m" * 52, "s" * 3, "m" * 49, "s" * 1]
    futures = [batcher.submit(t) for t in texts]
    model.gate.set()
    for f in futures:
        f.result(5)
    batcher.close()
    # The oldest (50 long) goes first with its nearest lengths; the short ones are padded only to each other.
    assert [sorted(len(t) for t in b) for b in model.batches[1:]] == [[49, 50, 52], [1, 2, 3]]


def test_the_oldest_item_always_rides_in_the_next_batch() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=2, max_wait_ms=0)
    held(model, batcher)
    lonely = batcher.submit("q" * 40)
    futures = [batcher.submit("w" * 3) for _ in range(6)]
    model.gate.set()
    lonely.result(5)
    for f in futures:
        f.result(5)
    batcher.close()
    assert "q" * 40 in model.batches[1]


def test_when_a_longer_item_breaks_the_budget_shorter_ones_still_join() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=4, max_wait_ms=0, token_budget=30)
    held(model, batcher)
    futures = [batcher.submit(t) for t in ["a" * 10, "b" * 11, "c" * 40, "d" * 9]]
    model.gate.set()
    for f in futures:
        f.result(5)
    batcher.close()
    assert sorted(len(t) for t in model.batches[1]) == [9, 10]  # 11 would make 3 x 11 = 33 > 30


def test_length_ratio_keeps_short_notes_out_of_long_batches() -> None:
    model = TinyModel()
    batcher = make(model, max_batch_size=8, max_wait_ms=0, max_length_ratio=2.0)
    held(model, batcher)
    futures = [batcher.submit(t) for t in ["l" * 100, "s" * 10, "l" * 150, "s" * 12, "l" * 90]]
    model.gate.set()
    for f in futures:
        f.result(5)
    batcher.close()
    assert [sorted(len(t) for t in b) for b in model.batches[1:]] == [[90, 100, 150], [10, 12]]
