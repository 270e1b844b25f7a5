"""MQTT topic names (DESIGN §4.1). Site ids are checked against the config's id pattern."""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "rtcc/v1/sites"
# The RTCC's trust set (agent.link.trustset): one retained message every site reads, only the
# hub writes; signed by the RTCC's root key, so the broker carrying it need not be trusted.
TRUST_TOPIC = "rtcc/v1/trust"


@dataclass(frozen=True)
class Topics:
    site: str

    @property
    def req(self) -> str:
        return f"{ROOT}/{self.site}/req"

    @property
    def evt(self) -> str:
        return f"{ROOT}/{self.site}/evt"

    @property
    def status(self) -> str:
        return f"{ROOT}/{self.site}/status"

    @property
    def registry(self) -> str:
        return f"{ROOT}/{self.site}/registry"

    @staticmethod
    def all_sites(leaf: str) -> str:
        """Wildcard subscription for the RTCC side, e.g. `all_sites("evt")`."""
        return f"{ROOT}/+/{leaf}"

    @staticmethod
    def site_of(topic: str) -> str | None:
        parts = topic.split("/")
        if len(parts) == 5 and "/".join(parts[:3]) == ROOT:
            return parts[3]
        return None
