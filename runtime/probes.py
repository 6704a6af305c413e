"""What a connection offers ``/ready`` to say whether it can authenticate now.

A connection's client (what ``ConnectionSpec.open`` yields) that has credentials to lose implements
:class:`AuthProbe`: ``probe_auth`` makes the cheapest call that needs a valid token (or refreshes
one), and raises when that fails; the exception's text is the reason ``/ready`` shows, so it
should say what to do (reconnect, check the client secret) and never carry a secret. ``splice
serve`` calls it at most every few seconds per connection and bounds it with a timeout, so it need
not cache anything itself. A client without the method is taken to need no authentication.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["AuthProbe"]


@runtime_checkable
class AuthProbe(Protocol):
    """A connection client that can check that it authenticates (for ``GET /ready``)."""

    async def probe_auth(self) -> None:
        """Return when the connection can authenticate now; raise with the reason otherwise."""
