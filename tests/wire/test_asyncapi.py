"""The committed AsyncAPI document is generated from the wire models and must stay current."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.wire import TRUST_TOPIC, RejectCode, Topics
from agent.wire.asyncapi import build_document, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_committed_document_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/asyncapi.json is stale: run `python -m agent.wire.asyncapi > docs/asyncapi.json`"
    )


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_every_reference_resolves() -> None:
    document = json.loads(DOC.read_text(encoding="utf-8"))
    refs = _refs(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        _resolve(document, ref)


def test_channels_are_the_topics() -> None:
    document = build_document()
    topics = Topics("{site}")
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {topics.req, topics.evt, topics.status, topics.registry, TRUST_TOPIC}
    bindings = {name: op["bindings"]["mqtt"] for name, op in document["operations"].items()}
    assert all(binding["qos"] == 1 for binding in bindings.values())
    assert bindings["sendStatus"]["retain"] and bindings["sendRegistry"]["retain"]
    assert bindings["receiveTrustSet"]["retain"]
    assert not bindings["receiveRequest"]["retain"]


def test_every_code_and_command_is_described() -> None:
    schemas = build_document()["components"]["schemas"]
    assert schemas["RejectCode"]["enum"] == [code.value for code in RejectCode]
    commands = {
        schemas[name]["properties"]["cmd"]["const"]
        for name in (
            "ClipRequest",
            "SnapshotRequest",
            "StreamRequest",
            "CancelRequest",
            "InventoryRequest",
        )
    }
    assert commands == {"clip", "snapshot", "stream", "cancel", "inventory"}
