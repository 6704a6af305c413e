"""The HTTP side of ``splice serve``: :func:`serve` serves a loaded project with :class:`ServeOptions`.

It depends on the runtime (:mod:`runtime.service` opens the project; the runtime's
:class:`runtime.routes.RouteTable` holds what triggers register), never the reverse.
"""

from __future__ import annotations

from runtime.server.serving import ServeOptions, Serving, run, serve

__all__ = ["ServeOptions", "Serving", "run", "serve"]
