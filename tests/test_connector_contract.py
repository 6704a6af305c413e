"""The connector contract is ``runtime.__all__``: connectors import nothing else of Splice's.

Third parties copy the built-in connectors, so these may only use what a plugin outside this
repository can rely on: ``from runtime import <name in runtime.__all__>``. Never a submodule
(``runtime.store``, ``runtime.redaction``...), never the language package ``dsl``. The example
plugin in ``tests/fixtures/splice-greeter`` is held to the same rule. Emulators live under
``connectors/`` too and are checked alike (third-party imports such as Starlette are theirs).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import runtime

ROOT = Path(__file__).resolve().parent.parent
CHECKED = (ROOT / "connectors", ROOT / "tests" / "fixtures" / "splice-greeter")


def contract_violations(source: str, filename: str = "<module>") -> list[str]:
    """Every import in ``source`` that reaches past ``runtime.__all__`` or into ``dsl``."""
    public = set(runtime.__all__)
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == "dsl":
                    found.append(f"{where}: import {alias.name} (the dsl package is not public)")
                elif top == "runtime":
                    found.append(f"{where}: import {alias.name} (use 'from runtime import ...')")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top == "dsl":
                found.append(f"{where}: from {node.module} import ... (the dsl package is not "
                             "public)")
            elif node.module != "runtime" and top == "runtime":
                found.append(f"{where}: from {node.module} import ... (a runtime submodule; "
                             "use 'from runtime import ...')")
            elif node.module == "runtime":
                found.extend(f"{where}: from runtime import {alias.name} (not in runtime.__all__)"
                             for alias in node.names if alias.name not in public)
    return found


def _modules() -> list[Path]:
    return sorted(path for base in CHECKED for path in base.rglob("*.py"))


def test_the_checked_trees_have_modules() -> None:
    """The test below looks at the connectors and the example plugin, not at an empty list."""
    modules = _modules()
    assert any(p.is_relative_to(CHECKED[0] / "quickbooks" / "emulator") for p in modules)
    assert any(p.is_relative_to(CHECKED[1]) for p in modules)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_connector_modules_import_only_the_public_runtime(path: Path) -> None:
    """No submodule of runtime, no name outside runtime.__all__, no dsl."""
    assert contract_violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))) == []


@pytest.mark.parametrize(("source", "what"), [
    ("from runtime.store import Inbox", "a runtime submodule"),
    ("import runtime.redaction", "use 'from runtime import ...'"),
    ("import runtime", "use 'from runtime import ...'"),
    ("from runtime import TOKENS_NAMESPACE", "not in runtime.__all__"),
    ("from dsl import parse_duration", "dsl package"),
    ("import dsl.values", "dsl package"),
    ("def f():\n    from runtime.steps import materialize\n", "a runtime submodule"),
])
def test_each_kind_of_reach_past_the_contract_is_caught(source: str, what: str) -> None:
    """Module-level or inside a function, every form of import outside the contract is reported."""
    (problem,) = contract_violations(source)
    assert what in problem


def test_public_imports_pass() -> None:
    """The allowed form with exported names, and third-party imports, are no violation."""
    assert contract_violations("from runtime import Param, SpliceError\nimport starlette\n"
                               "from connectors.http import plugin\n") == []


def test_the_guide_describes_exactly_the_public_surface() -> None:
    """docs/writing-a-connector.md has one line per name of runtime.__all__, and no other."""
    guide = (ROOT / "docs" / "writing-a-connector.md").read_text(encoding="utf-8")
    surface = guide.split("## The public surface", 1)[1]
    described = re.findall(r"^- `([A-Za-z0-9_]+)`: \S", surface, re.M)
    assert sorted(described) == sorted(runtime.__all__)
    assert len(described) == len(set(described))


def test_the_guide_shows_the_example_package_pyproject() -> None:
    """The guide's pyproject.toml is the example package's own, so copying it works."""
    guide = (ROOT / "docs" / "writing-a-connector.md").read_text(encoding="utf-8")
    example = (ROOT / "tests" / "fixtures" / "splice-greeter" / "pyproject.toml").read_text(
        encoding="utf-8")
    package = guide.split("## 1. The package", 1)[1]
    shown = package.split("```toml\n", 1)[1].split("```", 1)[0]
    assert shown == example


def test_the_guide_lists_every_parameter_type() -> None:
    """The typed-values table of the guide names each type a Param may have."""
    from typing import get_args

    from runtime.spec import ParamType

    guide = (ROOT / "docs" / "writing-a-connector.md").read_text(encoding="utf-8")
    table = guide.split("### Typed values", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    listed = set(re.findall(r"`([a-z]+)`", "\n".join(
        line.split("|")[1] for line in table.splitlines() if line.startswith("| `"))))
    assert set(get_args(ParamType)) <= listed
