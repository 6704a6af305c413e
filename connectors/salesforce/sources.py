"""Triggers: ``salesforce.changes`` (SystemModstamp polling) and change events (CometD)."""

from __future__ import annotations

from runtime.spec import SourceSpec

__all__ = ["SOURCES"]

SOURCES: tuple[SourceSpec, ...] = ()
