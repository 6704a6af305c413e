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

__all__ = ["find_handler", "retry_delay", "should_retry"]


def find_handler(handlers: Sequence[ErrorHandler], error: SpliceError) -> ErrorHandler | None:
    """The first handler whose types match ``error``."""
    for handler in handlers:
        if any(error_matches(pattern, error.error_type) for pattern in handler.types):
            return handler
    return None


def should_retry(handler: ErrorHandler | None, error: SpliceError, retries_done: int) -> bool:
    """Whether the failed step gets another try.

    Only errors marked retryable are retried: trying a validation error again cannot succeed and only
    delays the dead letter the user will have to look at anyway.
    """
    if handler is None or handler.retry is None or not error.retryable:
        return False
    return retries_done < handler.retry.attempts


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
