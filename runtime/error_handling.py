"""The ``on-error`` chain: which handler applies to an error, and whether to try the step again.

Handlers are tried in order; the first whose ``when`` matches the error type wins (exact type,
``NAMESPACE:*`` or ``ANY``). Its ``retry`` re-runs the failed step while the error is retryable and
attempts remain; after that its ``steps`` run and its action (continue, propagate, dead-letter)
applies. No matching handler means propagate; a source then keeps the event as a dead letter, so
nothing is lost.
"""

from __future__ import annotations

from collections.abc import Sequence

from dsl.model import ErrorHandler, RetryPolicy
from runtime.errors import SpliceError, error_matches
from runtime.retry import backoff_delay
from runtime.store.base import STORE_UNAVAILABLE

__all__ = ["STORE_RETRY", "find_handler", "is_infrastructure", "retry_delay", "retry_policy",
           "should_retry"]

#: How a step that met an unavailable store is retried when the flow names no retry of its own:
#: about 45 s in all, enough for a database failover or a dropped connection to come back.
STORE_RETRY = RetryPolicy(attempts=6, initial_delay=0.5, max_delay=15.0)


def find_handler(handlers: Sequence[ErrorHandler], error: SpliceError) -> ErrorHandler | None:
    """The first handler whose types match ``error``."""
    for handler in handlers:
        if any(error_matches(pattern, error.error_type) for pattern in handler.types):
            return handler
    return None


def is_infrastructure(error: SpliceError) -> bool:
    """Whether ``error`` is the runtime's own store failing rather than the flow's work.

    Such an error is never the flow's to handle: the store is where a dead letter would go and
    where the trigger's position is kept, so the event is left for the trigger to deliver again.
    """
    return error.error_type == STORE_UNAVAILABLE


def retry_policy(handler: ErrorHandler | None, error: SpliceError) -> RetryPolicy | None:
    """The retry that applies to ``error``: its handler's, else the built-in one for an
    unavailable store (:data:`STORE_RETRY`), else none."""
    if handler is not None and handler.retry is not None:
        return handler.retry
    return STORE_RETRY if is_infrastructure(error) else None


def should_retry(policy: RetryPolicy | None, error: SpliceError, retries_done: int) -> bool:
    """Whether the failed step gets another try under ``policy`` (see :func:`retry_policy`).

    Only errors marked retryable are retried: trying a validation error again cannot succeed and only
    delays the dead letter the user will have to look at anyway.
    """
    if policy is None or not error.retryable:
        return False
    return retries_done < policy.attempts


def retry_delay(policy: RetryPolicy, retry_number: int, error: SpliceError) -> float:
    """Seconds before retry ``retry_number`` (1-based), honouring the error's ``retry_after``."""
    return backoff_delay(
        retry_number,
        initial=policy.initial_delay,
        multiplier=policy.multiplier,
        maximum=policy.max_delay,
        jitter=policy.jitter,
        exponential=policy.backoff == "exponential",
        retry_after=error.retry_after,
    )
