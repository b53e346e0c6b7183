from shared.queues import ALL_QUEUES, queue_for
from shared.status import TERMINAL, JobStatus, Priority, can_transition


def test_terminal_statuses_have_no_way_out() -> None:
    for status in TERMINAL:
        assert all(not can_transition(status, target) for target in JobStatus)


def test_queued_can_run_cancel_or_expire_but_not_succeed() -> None:
    assert can_transition(JobStatus.QUEUED, JobStatus.RUNNING)
    assert can_transition(JobStatus.QUEUED, JobStatus.CANCELED)
    assert can_transition(JobStatus.QUEUED, JobStatus.EXPIRED)
    assert not can_transition(JobStatus.QUEUED, JobStatus.SUCCEEDED)


def test_running_finishes_or_goes_back_to_the_queue() -> None:
    assert can_transition(JobStatus.RUNNING, JobStatus.SUCCEEDED)
    assert can_transition(JobStatus.RUNNING, JobStatus.QUEUED)
    assert not can_transition(JobStatus.RUNNING, JobStatus.EXPIRED)


def test_priorities_map_to_distinct_queues_listed_stat_first() -> None:
    assert ALL_QUEUES[0] == queue_for(Priority.STAT)
    assert ALL_QUEUES[-1] == queue_for(Priority.ROUTINE)
    assert len(set(ALL_QUEUES)) == 3
    assert [p.rank for p in Priority.by_urgency()] == [0, 1, 2]
