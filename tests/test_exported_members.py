"""The public API is what ``__all__`` says, for the packages plugins and users import."""

from __future__ import annotations

import importlib
import inspect

import pytest

OURS = ("dsl", "runtime", "connectors")


@pytest.mark.parametrize("name", ["dsl", "runtime", "runtime.store"])
def test_all_lists_the_public_names(name: str) -> None:
    """Every exported name exists, and every public name the package defines is exported."""
    module = importlib.import_module(name)
    names = {m: v for m, v in vars(module).items()
             if not m.startswith("_") and not inspect.ismodule(v) and m != "annotations"}
    defined_here = {m for m, v in names.items()
                    if m.isupper() or str(getattr(v, "__module__", "")).startswith(OURS)}
    assert set(module.__all__) <= set(names)
    assert defined_here <= set(module.__all__)
    assert len(module.__all__) == len(set(module.__all__))
