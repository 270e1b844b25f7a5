"""docs/protocol.md states every constraint the request models enforce (issue 12, item 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.wire.asyncapi import component_schemas
from agent.wire.constraints import (
    BEGIN,
    COMMANDS,
    END,
    claims_of,
    render,
    replace_block,
)

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_the_table_in_protocol_md_is_current() -> None:
    text = PROTOCOL.read_text(encoding="utf-8")
    assert render() in text, (
        "docs/protocol.md's constraints table is stale: run "
        "`python -m agent.wire.constraints --write docs/protocol.md`"
    )


def _rows(document: str) -> dict[str, str]:
    block = document[document.index(BEGIN) : document.index(END)]
    rows: dict[str, str] = {}
    for line in block.splitlines():
        if line.startswith("| `"):
            name = line.split("|")[1].strip().strip("`")
            rows[name] = line
    return rows


def _expected(schema: dict[str, Any]) -> list[str]:
    """What the row of a claim with `schema` must contain, read from the JSON Schema
    independently of the renderer."""
    words: list[str] = []
    for keyword in ("minLength", "maxLength", "minimum", "maximum", "maxProperties"):
        if keyword in schema:
            words.append(str(schema[keyword]))
    if "pattern" in schema:
        words.append(schema["pattern"])
    if "format" in schema:
        words.append(schema["format"])
    words += [str(value) for value in schema.get("enum", [])]
    words += schema.get("x-rules", [])
    if schema.get("type") in ("integer", "string", "object"):
        words.append(schema["type"])
    return words


def missing_constraints(document: str) -> list[str]:
    """Each (claim, constraint) of the request models that `document` does not state."""
    schemas = component_schemas()
    rows = _rows(document)
    missing: list[str] = []
    for model in COMMANDS:
        schema = schemas[model.__name__]
        for path, _required, sub in claims_of(schema, schemas):
            if path == "cmd":
                continue
            row = rows.get(path)
            if row is None:
                missing.append(f"{path}: no row")
                continue
            missing += [f"{path}: {word}" for word in _expected(sub) if word not in row]
        missing += [
            f"{model.__name__}: {rule}"
            for rule in schema.get("x-rules", [])
            if rule not in document
        ]
    return missing


def test_every_model_constraint_is_in_protocol_md() -> None:
    assert missing_constraints(PROTOCOL.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("removed", "claim"),
    [("16 to 2048 characters", "relay.token"), ("from 1 to 3600", "max_seconds")],
)
def test_a_constraint_left_out_is_caught(removed: str, claim: str) -> None:
    """The check above is not vacuous: take one constraint out of the document and it fails,
    naming the claim (the relay token minimum is the issue's own example)."""
    text = PROTOCOL.read_text(encoding="utf-8")
    assert removed in text
    broken = text.replace(removed, "", 1)
    assert any(line.startswith(f"{claim}:") for line in missing_constraints(broken))


def test_write_replaces_only_the_block() -> None:
    document = f"before\n{BEGIN}\nold\n{END}\nafter\n"
    assert replace_block(document, render()) == f"before\n{render()}\nafter\n"
    with pytest.raises(ValueError):
        replace_block("no markers", render())


def test_the_verifier_s_limits_are_stated() -> None:
    """Limits the verifier enforces outside the claim models: the request lifetimes."""
    from agent.link.verify import PROTOCOL_MAX_LIFETIME, PROTOCOL_MAX_STREAM_LIFETIME

    text = PROTOCOL.read_text(encoding="utf-8")
    stream_minutes = int(PROTOCOL_MAX_STREAM_LIFETIME.total_seconds() // 60)
    assert f"`exp - iat` ≤ {stream_minutes} min for `stream`" in text
    assert f"≤ {PROTOCOL_MAX_LIFETIME.days} days otherwise" in text
