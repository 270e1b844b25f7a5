"""The wire contract v1 between a site and an RTCC (DESIGN §4): topics, claims, codes.

This package is the one definition of the protocol; the hub imports it too.
"""

from agent.wire.codes import FINAL_STATES, EventState, RejectCode
from agent.wire.events import Event
from agent.wire.manifest import Manifest
from agent.wire.registry import CameraListing, RegistryClaims, StatusClaims
from agent.wire.requests import (
    MAX_REQUEST_BYTES,
    CancelRequest,
    ClipRequest,
    InventoryRequest,
    Request,
    SnapshotRequest,
    StreamRequest,
    parse_request_claims,
)
from agent.wire.topics import TRUST_TOPIC, Topics

__all__ = [
    "FINAL_STATES",
    "MAX_REQUEST_BYTES",
    "TRUST_TOPIC",
    "CameraListing",
    "CancelRequest",
    "ClipRequest",
    "Event",
    "EventState",
    "InventoryRequest",
    "Manifest",
    "RegistryClaims",
    "RejectCode",
    "Request",
    "SnapshotRequest",
    "StatusClaims",
    "StreamRequest",
    "Topics",
    "parse_request_claims",
]
