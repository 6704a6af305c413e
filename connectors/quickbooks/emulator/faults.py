"""Every fault switch of the emulator in one place, plus the fault exception its handlers raise.

Counters mean "the next N": tests switch a fault on for exactly the calls they care about, and the
sandbox can set them from ``POST /_emulator/faults`` while a flow runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import httpx

__all__ = ["LOST_ANSWERS", "DroppedConnection", "Fault", "FaultSwitches"]

#: How a lost answer reaches the client: the gateway's 502 or 504 page, or a connection that drops
#: after the answer's headers went out.
LOST_ANSWERS = ("502", "504", "reset")


class Fault(Exception):
    """A QuickBooks fault: HTTP status plus one ``Error`` of the ``Fault`` envelope."""

    def __init__(self, code: str, message: str, detail: str = "", *, status: int = 400,
                 element: str = "", fault_type: str = "ValidationFault") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail or message
        self.status = status
        self.element = element
        self.fault_type = fault_type

    def envelope(self, time: str) -> dict[str, Any]:
        """The JSON body QuickBooks sends for this fault."""
        return {"Fault": {"Error": [{"Message": self.message, "Detail": self.detail,
                                     "code": self.code, "element": self.element}],
                          "type": self.fault_type},
                "time": time}


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised by the emulator after an answer's headers went out, to drop the connection.

    Served by uvicorn, the connection is closed mid-answer and the client's httpx raises a
    ``RemoteProtocolError``; mounted in process (``httpx.ASGITransport`` re-raises what the app
    raised) the client sees this very error: the same thing either way.
    """


@dataclass
class FaultSwitches:
    """What to break, and how often (counters count down as they fire)."""

    #: Seconds to wait before answering each API call.
    latency: float = 0.0
    #: Answer the next N API calls with ``fail_status`` without doing anything.
    fail_next: int = 0
    fail_status: int = 503
    #: Do the next N writes, then answer ``fail_status`` anyway (the client cannot know it worked).
    fail_after_commit: int = 0
    #: Create the next N records of ``lose_answers_entity`` (any entity when empty), then lose the
    #: answer as ``lost_answer`` says: ``502`` or ``504`` from the gateway, or ``reset`` (the
    #: connection drops). The record exists; the client cannot know. A ``/batch`` that created
    #: such a record loses its whole answer (one firing), every item done.
    lose_answers: int = 0
    lose_answers_entity: str = ""
    lost_answer: str = "502"
    #: Remember no ``requestid``: a repeated write is done again. Intuit documents no retention for
    #: them, and one report shows a repeated create making a second record.
    forget_request_ids: bool = False
    #: Answer the next N API calls with the real 429 throttle body.
    throttle_next: int = 0
    #: Expire every access token issued so far (fires once, then resets).
    expire_tokens: bool = False
    #: Before the next N updates, somebody else edits the record (its SyncToken moves on).
    stale_updates: int = 0
    #: Drop / send twice the next N webhook deliveries.
    drop_webhooks: int = 0
    duplicate_webhooks: int = 0

    def take(self, name: str) -> bool:
        """Consume one firing of a counter switch; ``True`` when it fired."""
        value = getattr(self, name)
        if isinstance(value, bool):
            setattr(self, name, False)
            return value
        if value > 0:
            setattr(self, name, value - 1)
            return True
        return False

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a JSON patch from the control API (unknown names are an error)."""
        known = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            key = name.replace("-", "_")
            if key not in known:
                raise KeyError(name)
            current = getattr(self, key)
            if key == "lost_answer" and str(value) not in LOST_ANSWERS:
                raise ValueError(f"lost_answer must be one of {', '.join(LOST_ANSWERS)}")
            if isinstance(current, bool) and not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
            setattr(self, key, type(current)(value))

    def to_dict(self) -> dict[str, Any]:
        """The switches as JSON."""
        return asdict(self)
