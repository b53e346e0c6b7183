"""Job-finished notifications over a real Redis."""

from __future__ import annotations

import threading
import time

import redis

from shared.notify import CHANNEL, Publisher, Waiter


def _subscribed(redis_url: str) -> bool:
    numsub = redis.Redis.from_url(redis_url).pubsub_numsub(CHANNEL)
    return bool(numsub and numsub[0][1] > 0)


def test_a_published_id_wakes_its_waiter(redis_url: str) -> None:
    done = threading.Event()
    # A fallback poll far longer than the test: only the notification can wake the waiter in time.
    waiter = Waiter(redis_url, fallback_poll_s=3600)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(waiter.wait(["job-1"], 3600, done.is_set)))
    thread.start()
    while not _subscribed(redis_url):
        time.sleep(0.01)
    done.set()
    Publisher(redis_url).finished(["other", "job-1"])
    thread.join(30)
    assert result == [True]


def test_without_a_notification_the_fallback_poll_sees_the_job(redis_url: str) -> None:
    done = threading.Event()
    waiter = Waiter(redis_url, fallback_poll_s=0.02)
    threading.Timer(0.1, done.set).start()
    assert waiter.wait(["job-2"], 3600, done.is_set) is True


def test_timeout_returns_false_and_cleans_up(redis_url: str) -> None:
    waiter = Waiter(redis_url, fallback_poll_s=0.01)
    assert waiter.wait(["job-3"], 0.05, lambda: False) is False
    assert waiter._events == {}


def test_publishing_with_redis_down_does_not_raise() -> None:
    Publisher("redis://127.0.0.1:1/0").finished(["x"])


def test_a_batch_waits_on_one_event_until_all_its_jobs_are_done(redis_url: str) -> None:
    finished: set[str] = set()
    waiter = Waiter(redis_url, fallback_poll_s=3600)
    result: list[bool] = []
    ids = ["b-1", "b-2", "b-3"]
    thread = threading.Thread(target=lambda: result.append(waiter.wait(ids, 3600, lambda: finished >= set(ids))))
    thread.start()
    while not _subscribed(redis_url):
        time.sleep(0.01)
    finished.update(ids)
    Publisher(redis_url).finished(["b-3"])  # the last job of the batch: only it can wake the wait
    thread.join(30)
    assert result == [True] and waiter._events == {}


def test_every_waiter_re_checks_once_the_subscription_is_up(redis_url: str) -> None:
    # A job that finished before the subscription was up has no notification to wait for: the waiter asks
    # again when the subscription is confirmed (the fallback poll is far longer than the test).
    checks: list[int] = []

    def is_done() -> bool:
        checks.append(1)
        return len(checks) > 1

    waiter = Waiter(redis_url, fallback_poll_s=3600)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(waiter.wait(["late"], 3600, is_done)), daemon=True)
    thread.start()
    thread.join(30)
    assert result == [True]


def test_a_dropped_subscription_reconnects_and_wakes_every_waiter(redis_url: str) -> None:
    done = threading.Event()
    waiter = Waiter(redis_url, fallback_poll_s=3600)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(waiter.wait(["lost"], 3600, done.is_set)), daemon=True)
    thread.start()
    while not _subscribed(redis_url):
        time.sleep(0.01)
    done.set()  # finished while the notification is lost with the connection
    redis.Redis.from_url(redis_url).client_kill_filter(_type="pubsub")
    thread.join(30)
    assert result == [True]
