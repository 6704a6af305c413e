"""Emulators load only when a sandbox starts: ``splice validate`` imports none of them, and a
connector's sandbox reference is resolved (or reported broken) on use."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest

from runtime.plugins import PluginLoadError
from runtime.registry import load_registry
from runtime.sandbox import load_sandbox, supports_sandbox
from runtime.spec import ConnectionSpec, Connector, SandboxSpec

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import runtime.cli as cli
sys.argv = ["splice", "validate", "flows/"]
try:
    code = cli.main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_validate_imports_no_emulator_nor_server() -> None:
    """``splice validate flows/`` on the shipped project loads the plugins without their emulators,
    and without the ASGI stack only ``serve`` and ``sandbox`` need."""
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    modules = report["modules"]
    assert "connectors.salesforce.plugin" in modules and "connectors.quickbooks.plugin" in modules
    assert [m for m in modules if ".emulator" in m] == []
    assert [m for m in modules if m.split(".")[0] in ("starlette", "uvicorn")] == []
    assert [m for m in modules if m.endswith(".sandbox") or m.startswith("runtime.server")] == []


def test_builtin_sandboxes_resolve_on_use() -> None:
    """The salesforce and quickbooks connectors name their sandbox by reference; it loads to a
    spec with an emulator, demo settings and actions."""
    registry = load_registry()
    for name in ("salesforce", "quickbooks"):
        connector = registry.connectors[name]
        assert connector.sandbox == f"connectors.{name}.sandbox:SANDBOX"
        assert supports_sandbox(connector)
        sandbox = load_sandbox(connector)
        assert isinstance(sandbox, SandboxSpec) and sandbox.emulator_options is not None
        assert sandbox.settings("http://127.0.0.1:1")
        assert "list" in {action.name for action in sandbox.actions}
    assert load_sandbox(registry.connectors["http"]) is None
    assert not supports_sandbox(registry.connectors["http"])


def _connector(sandbox: SandboxSpec | str | None) -> Connector:
    return Connector(name="demo", sandbox=sandbox)


def test_a_spec_given_directly_is_used_as_is() -> None:
    """A connector may hand over its :class:`SandboxSpec` itself instead of a reference."""
    spec = SandboxSpec(emulator=lambda **options: options, settings=lambda url: {"base-url": url})
    assert load_sandbox(_connector(spec)) is spec
    assert not supports_sandbox(_connector(spec))  # no connection: nothing to point at it
    connection = ConnectionSpec(params=(), open=lambda settings, ctx: nullcontext(settings))
    assert supports_sandbox(Connector(name="demo", sandbox=spec, connection=connection))


@pytest.mark.parametrize(("reference", "message"), [
    ("connectors.salesforce.sandbox", "is not 'module:attribute'"),
    ("connectors.nowhere.sandbox:SANDBOX", "cannot load its sandbox .*ModuleNotFoundError"),
    ("connectors.salesforce.sandbox:MISSING", "cannot load its sandbox .*AttributeError"),
    ("connectors.salesforce.sandbox:SANDBOX_ACTIONS", "is a tuple, not a SandboxSpec"),
])
def test_a_broken_reference_names_the_connector(reference: str, message: str) -> None:
    """A reference that does not lead to a spec is a plugin error naming the connector."""
    with pytest.raises(PluginLoadError, match=f"connector 'demo': .*{message}"):
        load_sandbox(_connector(reference))
