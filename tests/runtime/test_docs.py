"""``splice docs``: the reference in docs/reference/ is the installed plugins' own, and current."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.cli import main
from runtime.docs import GENERATED_MARKER, LANGUAGE_FILE, render_reference, write_reference
from runtime.registry import load_registry

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"


def test_committed_reference_is_current() -> None:
    """docs/reference/ is what `splice docs` writes for the installed plugins, so it cannot go
    stale (refresh it with `splice docs` from the repository's root)."""
    pages = render_reference(load_registry())
    committed = {p.name: p.read_text(encoding="utf-8") for p in REFERENCE.glob("*.md")}
    assert sorted(committed) == sorted(pages)
    for name, text in pages.items():
        assert committed[name] == text, f"docs/reference/{name} is stale: run `splice docs`"


def test_reference_covers_steps_triggers_operations_and_functions() -> None:
    pages = render_reference(load_registry())
    assert {"index.md", LANGUAGE_FILE, "http.md", "salesforce.md", "quickbooks.md"} <= set(pages)
    language = pages[LANGUAGE_FILE]
    for step in ("transform", "set-variable", "log", "flow-ref", "choice", "foreach"):
        assert f"### `{step}`" in language
    assert "### `schedule` (trigger" in language
    assert "| `catch-up` | boolean |" in language
    assert "- `$money`:" in language
    assert "## `http.request` (operation" in pages["http.md"]
    assert "## `http.listener` (trigger" in pages["http.md"]
    assert "(salesforce.md)" in pages["index.md"]
    assert all(text.startswith(GENERATED_MARKER + "\n") for text in pages.values())


def test_splice_docs_writes_the_directory_and_drops_stale_pages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "docs" / "reference"
    target.mkdir(parents=True)
    (target / "gone.md").write_text(GENERATED_MARKER + "\n# an uninstalled connector\n")
    (target / "notes.md").write_text("# written by hand\n")
    assert main(["docs"]) == 0
    assert "wrote docs/reference/index.md" in capsys.readouterr().out
    names = {p.name for p in target.glob("*.md")}
    assert names == set(render_reference(load_registry())) | {"notes.md"}


def test_write_reference_overwrites_pages(tmp_path: Path) -> None:
    write_reference({"a.md": GENERATED_MARKER + "\nold\n"}, tmp_path)
    write_reference({"a.md": GENERATED_MARKER + "\nnew\n"}, tmp_path)
    assert (tmp_path / "a.md").read_text() == GENERATED_MARKER + "\nnew\n"
