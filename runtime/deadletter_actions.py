"""Replaying and discarding dead letters: one implementation for ``splice dlq`` and the admin API.

A replay runs the letter's flow again on the kept input (its execution record says which letter it
replays, and the dead-lettered execution is then marked ``retried``). A letter whose replay
completes is removed; one that fails again into a new letter is replaced by it; one whose flow no
longer exists is kept. Each letter's result is a small dict the CLI prints and the API returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runtime.engine import FlowEngine
from runtime.message import Message
from runtime.redaction import redact
from runtime.store.deadletters import DeadLetter, DeadLetterQueue

__all__ = ["discard_letters", "replay_letters"]


async def replay_letters(engine: FlowEngine, queue: DeadLetterQueue,
                         letters: Sequence[DeadLetter]) -> list[dict[str, Any]]:
    """Replay each letter in order; one result per letter (``outcome``: ``completed``,
    ``failed``, ``dead-lettered`` (with ``deadLetterId``, the new letter) or ``kept``)."""
    results: list[dict[str, Any]] = []
    for letter in letters:
        if letter.flow not in engine.project.flows:
            results.append({"id": letter.id, "flow": letter.flow, "outcome": "kept",
                            "reason": f"flow '{letter.flow}' no longer exists"})
            continue
        outcome = await engine.run(letter.flow, Message.from_dict(letter.message), replay_of=letter.id)
        result: dict[str, Any] = {"id": letter.id, "flow": letter.flow, "outcome": outcome.status}
        if outcome.status == "completed" or outcome.dead_letter_id:
            await queue.delete(letter.id)
        if outcome.dead_letter_id:
            result["deadLetterId"] = outcome.dead_letter_id
        if outcome.error is not None:
            result["error"] = {"type": outcome.error.error_type,
                               "message": redact(str(outcome.error.message))}
        results.append(result)
    return results


async def discard_letters(queue: DeadLetterQueue, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Remove each letter; ``outcome`` is ``discarded`` or ``not-found``."""
    return [{"id": letter_id,
             "outcome": "discarded" if await queue.delete(letter_id) else "not-found"}
            for letter_id in ids]
