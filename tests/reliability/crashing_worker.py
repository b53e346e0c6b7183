"""`python -m tests.reliability.crashing_worker`: the real inference worker (`python -m worker`) with two test-only
behaviours patched in from outside, so production code carries no test hooks:

- model `slow-noop` sleeps MEDQ_TEST_SLOW_ITEM_S (default 0.03) per item, so a batch is in flight long enough
  to kill or stop the worker in the middle of it;
- model `crasher` SIGKILLs its own process on every forward pass: a poison job.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence

from worker.__main__ import main
from worker.predictors.noop import NoopPredictor

SLOW = "slow-noop"
CRASHER = "crasher"

_plain_predict = NoopPredictor.predict


def _predict(self: NoopPredictor, items: Sequence[int]) -> list[list[float]]:
    if self.spec.name == CRASHER:
        os.kill(os.getpid(), signal.SIGKILL)  # as an OOM kill or a segfault in native code would
    if self.spec.name == SLOW:
        time.sleep(float(os.environ.get("MEDQ_TEST_SLOW_ITEM_S", "0.03")) * len(items))
    return _plain_predict(self, items)


NoopPredictor.predict = _predict  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
