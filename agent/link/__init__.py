"""The RTCC link: the MQTT session with the broker (transport) and the request service
(verification → policy → ledger → dispatch; see `agent.link.service`); where each request
stands (`agent.link.states`) and the `Job` a delivery handler reports through
(`agent.link.job`); the owner's actions on requests and sharing, the one library the control
socket and the owner's page call (`agent.link.owner_actions`). `probe_broker` tests the broker
with the same client for diagnostics (`agent.link.probe`)."""

from agent.link.backoff import Backoff
from agent.link.delivery import DeliveryHandlers, PlaceholderDelivery
from agent.link.job import Job
from agent.link.owner_actions import LiveControl, OwnerActionError, OwnerActions, Paused
from agent.link.ports import (
    DeliveryHandler,
    EventSink,
    FootageRequest,
    Holds,
    PendingNotifier,
    Publisher,
)
from agent.link.presence import (
    RegistryProvider,
    StatusProvider,
    bare_registry,
    basic_status,
    registry_from_config,
)
from agent.link.probe import BrokerProbe, probe_broker
from agent.link.replay import ReplayCache
from agent.link.requests_db import RequestBook, RequestRecord
from agent.link.service import RequestService
from agent.link.session import (
    BrokerSettings,
    MqttSession,
    RequestHandler,
    SessionPublisher,
    SessionStats,
)
from agent.link.states import RequestStates
from agent.link.tls import TlsConfigError, client_tls_context
from agent.link.verify import JwksError, KeyRing, Rejection, Verified, Verifier

__all__ = [
    "Backoff",
    "BrokerProbe",
    "BrokerSettings",
    "DeliveryHandler",
    "DeliveryHandlers",
    "EventSink",
    "FootageRequest",
    "Holds",
    "Job",
    "JwksError",
    "KeyRing",
    "LiveControl",
    "MqttSession",
    "OwnerActionError",
    "OwnerActions",
    "Paused",
    "PendingNotifier",
    "PlaceholderDelivery",
    "Publisher",
    "RegistryProvider",
    "Rejection",
    "ReplayCache",
    "RequestBook",
    "RequestHandler",
    "RequestRecord",
    "RequestService",
    "RequestStates",
    "SessionPublisher",
    "SessionStats",
    "StatusProvider",
    "TlsConfigError",
    "Verified",
    "Verifier",
    "bare_registry",
    "basic_status",
    "client_tls_context",
    "probe_broker",
    "registry_from_config",
]
