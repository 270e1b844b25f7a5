"""Enrollment: how a site gets its identity on the RTCC's broker (`rtcc-edge enroll`).

`enroll()` sends a one-time token, a CSR for a fresh MQTT client key and the device key's public
JWK to the hub, checks the answer, and writes the certificates, key, RTCC key set and the
configuration's `[rtcc]` section all or nothing. The wire models are in `agent.enroll.protocol`.
"""

from agent.enroll.client import EnrollError
from agent.enroll.enroll import (
    CA_FILE,
    CERT_FILE,
    JWKS_FILE,
    KEY_FILE,
    EnrollResult,
    enroll,
)
from agent.enroll.files import Ownership

__all__ = [
    "CA_FILE",
    "CERT_FILE",
    "JWKS_FILE",
    "KEY_FILE",
    "EnrollError",
    "EnrollResult",
    "Ownership",
    "enroll",
]
