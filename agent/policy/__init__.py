"""The owner's sharing policy: per-camera sharing, live, limits, allowed destinations, pause.

`Policy` layers the owner's runtime changes (saved in the state directory) over the
configuration file and judges verified requests (`Policy.evaluate`); see `agent.policy.engine`
for the order of checks and `agent.policy.hosts` for the destination rules.
"""

from agent.policy.engine import (
    CameraFacts,
    CameraSharing,
    Decision,
    NotOwnerError,
    Outcome,
    Policy,
    PolicyError,
)
from agent.policy.hosts import destination_problem, host_matches, is_loopback
from agent.policy.state import OwnerDecision, OwnerState, OwnerStateError, OwnerStateStore

__all__ = [
    "CameraFacts",
    "CameraSharing",
    "Decision",
    "NotOwnerError",
    "Outcome",
    "OwnerDecision",
    "OwnerState",
    "OwnerStateError",
    "OwnerStateStore",
    "Policy",
    "PolicyError",
    "destination_problem",
    "host_matches",
    "is_loopback",
]
