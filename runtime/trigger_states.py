"""What each trigger of a runtime is doing right now, for ``GET /ready``.

A trigger whose source keeps failing is restarted with a growing pause (:func:`runtime.sources.
run_trigger`) and its flow gets no work meanwhile, while the server still answers: readiness has to
say so, by flow, with the error. States:

- ``starting``: registered, its source not called yet;
- ``running``: its source runs (on this replica);
- ``standby``: an exclusive trigger that another replica runs (ready: that is the design);
- ``restarting``: its source failed and is started again after a pause (``error``, ``failures``);
- ``finished``: its source returned although nobody asked it to stop (the flow gets no work);
- ``stopped``: stopped on request (shutdown).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from runtime.redaction import redact

__all__ = ["TriggerState", "TriggerStates"]

State = Literal["starting", "running", "standby", "restarting", "finished", "stopped"]
#: The states in which a trigger does its job.
HEALTHY: frozenset[str] = frozenset({"running", "standby"})


@dataclass(slots=True)
class TriggerState:
    """One flow's trigger: its state since when, how often its source failed, the last error."""

    flow: str
    trigger: str
    state: State = "starting"
    since: datetime = datetime.min.replace(tzinfo=UTC)
    #: Failures of the source since the runtime started (the last one in ``error``).
    failures: int = 0
    error: str | None = None

    def _set(self, state: State) -> None:
        self.state = state
        self.since = datetime.now(UTC)

    def running(self) -> None:
        """The source is called (again)."""
        self._set("running")

    def standby(self) -> None:
        """Another replica runs this exclusive trigger."""
        self._set("standby")

    def failed(self, error: BaseException) -> None:
        """The source raised; it is started again after a pause."""
        self.failures += 1
        # Error texts may quote settings; they leave the process through /ready, so mask secrets.
        self.error = redact(f"{type(error).__name__}: {error}")
        self._set("restarting")

    def returned(self, *, stopping: bool) -> None:
        """The source returned: on request (``stopping``), or by itself."""
        self._set("stopped" if stopping else "finished")

    @property
    def healthy(self) -> bool:
        """True when the trigger does its job (it runs, or another replica runs it)."""
        return self.state in HEALTHY

    def to_dict(self) -> dict[str, Any]:
        """The JSON ``/ready`` shows for this trigger."""
        out: dict[str, Any] = {"trigger": self.trigger, "state": self.state,
                               "since": self.since.isoformat()}
        if self.failures:
            out["failures"] = self.failures
        if self.error is not None:
            out["lastError"] = self.error
        return out


class TriggerStates:
    """The trigger states of one runtime, by flow."""

    def __init__(self) -> None:
        self._states: dict[str, TriggerState] = {}

    def register(self, flow: str, trigger: str) -> TriggerState:
        """The state of ``flow``'s trigger (``starting`` when new)."""
        state = self._states.get(flow)
        if state is None or state.trigger != trigger:
            state = self._states[flow] = TriggerState(flow, trigger, since=datetime.now(UTC))
        return state

    def all(self) -> dict[str, TriggerState]:
        """Every registered trigger, by flow name."""
        return dict(sorted(self._states.items()))
