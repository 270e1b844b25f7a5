"""The MQTT interface as an AsyncAPI 3.0 document, generated from the wire models.

`python -m agent.wire.asyncapi > docs/asyncapi.json` writes it; a test checks the committed copy
is current, so the document cannot drift from the code. Every payload is a compact JWS; the
claims it carries are given as JSON Schema under the extension `x-jwt-claims`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from agent.wire.codes import EventState, RejectCode
from agent.wire.events import Event
from agent.wire.manifest import Manifest
from agent.wire.registry import RegistryClaims, StatusClaims
from agent.wire.requests import (
    MAX_REQUEST_BYTES,
    CancelRequest,
    ClipRequest,
    InventoryRequest,
    Request,
    SnapshotRequest,
    StreamRequest,
)
from agent.wire.topics import TRUST_TOPIC
from agent.wire.trust import TRUST_SET_TYP, TrustSet

REF = "#/components/schemas/{model}"
_MODELS: tuple[type[BaseModel], ...] = (
    ClipRequest,
    SnapshotRequest,
    StreamRequest,
    CancelRequest,
    InventoryRequest,
    Event,
    Manifest,
    RegistryClaims,
    StatusClaims,
    TrustSet,
)


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema([(model, "validation") for model in _MODELS], ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    union = TypeAdapter(Request).json_schema(ref_template=REF)
    union.pop("$defs", None)
    # AsyncAPI's schema object names the discriminating property; OpenAPI's mapping object
    # (what pydantic emits) is not valid there.
    union["discriminator"] = "cmd"
    union["title"] = "RequestClaims"
    union["description"] = "The claims of a request JWS, one model per `cmd`."
    schemas["RequestClaims"] = union
    schemas["RejectCode"] = {
        "type": "string",
        "enum": [code.value for code in RejectCode],
        "description": "Why a request was rejected or failed (DESIGN §4.3).",
    }
    schemas["EventState"] = {"type": "string", "enum": [state.value for state in EventState]}
    return dict(sorted(schemas.items()))


def component_schemas() -> dict[str, Any]:
    """The JSON Schemas of every wire model, as in docs/asyncapi.json (also the source of the
    constraints table in docs/protocol.md)."""
    return _schemas()


def _jws(description: str, claims: str, *, typ: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "string",
        "description": description,
        "pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
    }
    message: dict[str, Any] = {
        "contentType": "application/jose",
        "payload": payload,
        "x-jwt-claims": {"$ref": REF.format(model=claims)},
    }
    if typ:
        message["x-jwt-typ"] = typ
    return message


def _channel(address_leaf: str, message: str, description: str) -> dict[str, Any]:
    return {
        "address": "rtcc/v1/sites/{site}/" + address_leaf,
        "description": description,
        "parameters": {"site": {"description": "The site id assigned at enrollment."}},
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
    }


def _operation(action: str, channel: str, message: str, summary: str, *, retain: bool) -> Any:
    return {
        "action": action,
        "summary": summary,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "bindings": {"mqtt": {"qos": 1, "retain": retain, "bindingVersion": "0.2.0"}},
    }


def build_document() -> dict[str, Any]:
    """The document, described from the site's side (the site receives requests)."""
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "rtcc-edge: site ↔ Real Time Crime Center",
            "version": "1.0.0",
            "description": (
                "Wire contract v1 between a camera site running rtcc-edge and an RTCC. MQTT 3.1.1 "
                "or 5 over TLS, QoS 1 everywhere; each site may read and write only under "
                "`rtcc/v1/sites/{site}/`. Requests are EdDSA (Ed25519) JWS signed by a key in "
                "the site's trusted RTCC JWKS; events, status, registry and manifests are EdDSA "
                "JWS signed by the site's device key (kid = RFC 7638 thumbprint). Request "
                f"payloads over {MAX_REQUEST_BYTES} bytes are refused unread. See docs/protocol.md."
            ),
        },
        "defaultContentType": "application/jose",
        "servers": {
            "rtcc": {
                "host": "rtcc.example.gov:8883",
                "protocol": "secure-mqtt",
                "description": "The RTCC's broker. The site connects out; it opens no port.",
                "security": [
                    {"$ref": "#/components/securitySchemes/clientCertificate"},
                    {"$ref": "#/components/securitySchemes/usernamePassword"},
                ],
                "bindings": {
                    "mqtt": {
                        "clientId": "the site id",
                        "cleanSession": False,
                        "keepAlive": 30,
                        "lastWill": {
                            "topic": "rtcc/v1/sites/{site}/status",
                            "qos": 1,
                            "retain": True,
                            "message": "status JWS with online: false, signed at connect",
                        },
                        "bindingVersion": "0.2.0",
                    }
                },
            }
        },
        "channels": {
            "requests": _channel("req", "Request", "RTCC → site: signed requests."),
            "events": _channel("evt", "Event", "Site → RTCC: signed events about requests."),
            "status": _channel("status", "Status", "Site → RTCC, retained: liveness and health."),
            "registry": _channel(
                "registry", "Registry", "Site → RTCC, retained: the cameras the owner lists."
            ),
            "trust": {
                "address": TRUST_TOPIC,
                "description": (
                    "RTCC → every site, retained: the request-signing keys sites accept, signed "
                    "by the RTCC's root key (pinned at enrollment). Sites read it, only the hub "
                    "writes it; a version lower than the highest a site has seen is refused."
                ),
                "messages": {"TrustSet": {"$ref": "#/components/messages/TrustSet"}},
            },
        },
        "operations": {
            "receiveRequest": _operation(
                "receive",
                "requests",
                "Request",
                "A request for footage, live view, etc.",
                retain=False,
            ),
            "sendEvent": _operation(
                "send",
                "events",
                "Event",
                "Progress of a request; one final state each.",
                retain=False,
            ),
            "sendStatus": _operation(
                "send",
                "status",
                "Status",
                "On connect, on change, at most every 60 s.",
                retain=True,
            ),
            "sendRegistry": _operation(
                "send",
                "registry",
                "Registry",
                "On connect, on change, at most every 60 s.",
                retain=True,
            ),
            "receiveTrustSet": _operation(
                "receive",
                "trust",
                "TrustSet",
                "On each key rotation or revocation, and (retained) at every connect.",
                retain=True,
            ),
        },
        "components": {
            "messages": {
                "Request": _jws("A request, signed by the RTCC.", "RequestClaims"),
                "Event": _jws("An event, signed by the site's device key.", "Event"),
                "Status": _jws("The site's status, signed by its device key.", "StatusClaims"),
                "Registry": _jws(
                    "The site's camera registry, signed by its device key.", "RegistryClaims"
                ),
                "TrustSet": _jws(
                    "The RTCC's trust set, signed by its root key (header kid = the root's).",
                    "TrustSet",
                    typ=TRUST_SET_TYP,
                ),
            },
            "schemas": _schemas(),
            "securitySchemes": {
                "clientCertificate": {
                    "type": "X509",
                    "description": "Client certificate issued at enrollment, CN = site id.",
                },
                "usernamePassword": {"type": "userPassword"},
            },
        },
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
