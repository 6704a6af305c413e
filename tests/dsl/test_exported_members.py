"""``dsl.__all__`` is the public API: every name is importable and nothing public is left out."""

from __future__ import annotations

import dsl


def test_all_names_exist() -> None:
    """Each name in ``__all__`` is defined."""
    assert all(hasattr(dsl, name) for name in dsl.__all__)


def test_public_names_are_exported() -> None:
    """No public attribute (other than submodules) is missing from ``__all__``."""
    public = {name for name, value in vars(dsl).items()
              if not name.startswith("_") and type(value).__name__ != "module" and name != "annotations"}
    assert public == set(dsl.__all__)


def test_dsl_does_not_import_the_runtime() -> None:
    """Dependencies point one way: dsl never imports runtime or connectors."""
    import pathlib

    root = pathlib.Path(dsl.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "import runtime" not in text and "from runtime" not in text, path
        assert "import connectors" not in text and "from connectors" not in text, path
