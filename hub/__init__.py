"""rtcc-hub: the RTCC side of rtcc-edge (DESIGN §2).

One library with three clients: the console (`hub.console`, the analysts' web application),
the command line (`hub.cli`, `rtcc-hub`) and the MQTT event ingestion (`hub.ingest`). It holds
the hub's home (configuration, signing key, JWKS, trusted site keys: files), its database
(`hub.db`: sites and cameras, requests and events, incidents, evidence, analysts, the audit log),
the request workflow (`hub.workflow`), incidents, the evidence locker, the live wall, fleet
health, and the checks of every site message against the site's device key (`hub.trust`).
"""

__version__ = "0.1.0"

from agent.units import haversine_m
from hub.keys import HubKeyError, load_signing_key, new_signing_key, read_jwks
from hub.mqtt import HubConnectionError, hub_client, retained
from hub.request import (
    RequestError,
    build_claims,
    follow_events,
    send_request,
    sign_request,
)
from hub.sites import CameraRow, SiteView, camera_rows, collect_sites
from hub.state import BrokerConfig, HubConfig, HubHome, HubStateError, TrustedSite
from hub.trust import Checked, Verdict, check_message
from hub.watch import watch

__all__ = [
    "BrokerConfig",
    "CameraRow",
    "Checked",
    "HubConfig",
    "HubConnectionError",
    "HubHome",
    "HubKeyError",
    "HubStateError",
    "RequestError",
    "SiteView",
    "TrustedSite",
    "Verdict",
    "build_claims",
    "camera_rows",
    "check_message",
    "collect_sites",
    "follow_events",
    "haversine_m",
    "hub_client",
    "load_signing_key",
    "new_signing_key",
    "read_jwks",
    "retained",
    "send_request",
    "sign_request",
    "watch",
]
