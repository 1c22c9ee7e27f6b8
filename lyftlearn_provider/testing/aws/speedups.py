"""Make moto's SQS and EventBridge cost what the real services cost their clients: nothing quadratic.

The emulator must never be the bottleneck of what it measures. Profiling the P1 benchmark
(``bench/tracking.py``, a few hundred jobs emitting events into one queue) showed moto's server
spending almost all of its CPU in two places that real AWS does not have:

- ``SQSBackend.is_message_valid_based_on_retention_period`` builds the queue's whole attribute map
  (``ApproximateNumberOfMessages*`` each scan every message) to read one number, once for every
  message it hands out: a receive cost O(batch x queue length);
- EventBridge's ``EventTemplateParser.parse`` builds a new JSONPath parser (PLY tables) for every
  event it delivers to a target, even without an input transformer.

:func:`apply` replaces the first with the same rule reading the attribute directly, and caches the
parsed JSONPath expressions of the second (they are immutable; ``find`` does not change them). What
the services answer is unchanged; ``tests/testing_aws/test_speedups.py`` holds both to moto's own
results. Applied once per process, by :class:`~lyftlearn_provider.testing.aws.app.EmulatorApp`.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_APPLIED = False
_LOCK = threading.Lock()


def _is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
    from moto.core.utils import unix_time

    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return bool(retain_until > unix_time())


def apply() -> None:
    """Patch moto in this process (idempotent)."""
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        from moto.sqs.models import SQSBackend

        SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
            _is_message_valid_based_on_retention_period
        )
        try:
            import jsonpath_ng.ext
        except ImportError:  # moto without its events extra: nothing to speed up
            pass
        else:
            # moto imports ``parse`` from ``jsonpath_ng.ext`` inside the function, on every call.
            jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)
        _APPLIED = True
