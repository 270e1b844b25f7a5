"""Recording and discovery meet only in `agent.media`: neither imports the other, and the media
room imports neither (nor anything else that reads video), so it stays the floor below them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[2] / "agent"

# Each package, and the agent packages it must never import (at any depth, deferred imports
# inside functions included).
RULES = {
    "compat": ("agent.recorder",),
    "recorder": ("agent.compat",),
    "media": (
        "agent.recorder",
        "agent.compat",
        "agent.cameras",
        "agent.store",
        "agent.tunnel",
        "agent.daemon",
    ),
}


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved against its package."""
    package = ".".join(path.relative_to(AGENT.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            # `from agent import compat` names a package, not an attribute
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("room", sorted(RULES))
def test_no_import_runs_between_recording_and_discovery(room: str) -> None:
    files = sorted((AGENT / room).rglob("*.py"))
    assert files, f"agent/{room} has no modules"
    wrong = [
        f"{path.relative_to(AGENT.parent)} imports {module}"
        for path in files
        for module in sorted(imported_modules(path))
        if any(_under(module, banned) for banned in RULES[room])
    ]
    assert wrong == []


def test_the_scanner_sees_deferred_imports() -> None:
    """The rule above would pass vacuously if the scanner missed an import form."""
    module = AGENT / "recorder" / "supervisor.py"
    assert "agent.media.source" in imported_modules(module)
    assert "agent.onvif" in imported_modules(AGENT / "media" / "source.py")  # inside a function
