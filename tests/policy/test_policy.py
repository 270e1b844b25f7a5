"""The owner's sharing policy: effective sharing, runtime changes, pause, order of checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig, SharingMode
from agent.policy import CameraFacts, CameraSharing, OwnerStateError, Policy, PolicyError
from agent.policy.state import STATE_FILE
from agent.wire import RejectCode, Request, StreamRequest, parse_request_claims
from tests.support.link_service import FakeClock, site_config
from tests.support.rtcc import make_claims


@pytest.fixture
def config(tmp_path: Path) -> AgentConfig:
    return site_config(tmp_path / "state", requests_per_hour=5)


def request(cmd: str = "clip", **claims: Any) -> Request:
    return parse_request_claims(make_claims(cmd, **claims))


def front_door(policy: Policy) -> CameraSharing:
    """The sharing of the configured camera "front-door" (always there, so never None)."""
    sharing = policy.sharing("front-door")
    assert sharing is not None
    return sharing


def stream_request(**claims: Any) -> StreamRequest:
    parsed = request("stream", **claims)
    assert isinstance(parsed, StreamRequest)
    return parsed


def test_effective_sharing_comes_from_the_config(config: AgentConfig) -> None:
    policy = Policy.open(config)
    front = policy.sharing("front-door")
    assert front is not None and front.mode is SharingMode.INTEGRATED and front.live
    assert front.source == "config"
    assert policy.sharing("garage") is None


def test_owner_changes_persist_and_override_the_config(config: AgentConfig) -> None:
    policy = Policy.open(config)
    before, after = policy.set_sharing("front-door", SharingMode.PRIVATE, live=None, by="owner")
    assert before.mode is SharingMode.INTEGRATED and after.mode is SharingMode.PRIVATE
    assert not after.live and after.source == "owner"
    reopened = Policy.open(config)
    assert front_door(reopened).mode is SharingMode.PRIVATE
    decision = reopened.evaluate(request(camera="front-door"), recent_requests=0)
    assert decision.code is RejectCode.NOT_SHARED


def test_live_is_kept_when_staying_integrated(config: AgentConfig) -> None:
    policy = Policy.open(config)
    _, after = policy.set_sharing("front-door", SharingMode.INTEGRATED, live=None, by="o")
    assert after.live
    _, after = policy.set_sharing("front-door", SharingMode.INTEGRATED, live=False, by="o")
    assert not after.live


@pytest.mark.parametrize(
    ("camera", "mode", "live", "why"),
    [
        ("garage", SharingMode.PRIVATE, None, "no camera"),
        ("parking-lot", SharingMode.REGISTRY, True, "integrated"),
        ("stockroom", SharingMode.REGISTRY, None, "location"),
    ],
)
def test_changes_the_config_does_not_allow(
    config: AgentConfig, camera: str, mode: SharingMode, live: bool | None, why: str
) -> None:
    policy = Policy.open(config)
    with pytest.raises(PolicyError, match=why):
        policy.set_sharing(camera, mode, live=live, by="owner")
    assert not (config.owner_dir / STATE_FILE).exists()


@pytest.mark.parametrize("content", ["{broken", '{"version": 2}', '{"sharing": {"x": 1}}'])
def test_a_damaged_state_file_is_an_error(config: AgentConfig, content: str) -> None:
    config.owner_dir.mkdir()
    (config.owner_dir / STATE_FILE).write_text(content)
    with pytest.raises(OwnerStateError, match=STATE_FILE):
        Policy.open(config)


def test_pause_with_an_end(config: AgentConfig) -> None:
    clock = FakeClock()
    policy = Policy.open(config, clock=clock)
    until = datetime.fromtimestamp(clock(), UTC) + timedelta(hours=2)
    policy.pause(until=until, by="owner")
    # A pair, not `paused and ...`: mypy would keep `paused` narrowed to True past the clock.
    assert (policy.paused, policy.paused_until) == (True, until)
    assert policy.evaluate(request(), recent_requests=0).code is RejectCode.PAUSED
    assert policy.evaluate(request("inventory"), recent_requests=0).outcome == "accepted"
    assert policy.evaluate(request("cancel"), recent_requests=0).outcome == "accepted"
    clock.advance(timedelta(hours=3))
    assert not policy.paused and policy.paused_until is None
    assert policy.pause_expiry == until, "the timer still has to record the automatic resume"
    assert policy.resume()
    assert policy.pause_expiry is None


def test_order_paused_then_rate_then_camera(config: AgentConfig) -> None:
    policy = Policy.open(config)
    unknown = request(camera="garage")
    assert policy.evaluate(unknown, recent_requests=0).code is RejectCode.UNKNOWN_CAMERA
    assert policy.evaluate(unknown, recent_requests=5).code is RejectCode.RATE_LIMITED
    policy.pause(until=None, by="owner")
    assert policy.evaluate(unknown, recent_requests=5).code is RejectCode.PAUSED


def test_modes_decide_the_outcome(config: AgentConfig) -> None:
    policy = Policy.open(config)
    assert policy.evaluate(request(camera="front-door"), recent_requests=0).outcome == "accepted"
    pending = policy.evaluate(request(camera="parking-lot"), recent_requests=0)
    assert pending.outcome == "pending_approval"
    snapshot = policy.evaluate(request("snapshot", camera="parking-lot"), recent_requests=0)
    assert snapshot.outcome == "pending_approval"


def test_window_end_within_the_leeway_is_fine(config: AgentConfig) -> None:
    policy = Policy.open(config)
    now = datetime.now(UTC)
    near = request(
        start=(now - timedelta(minutes=5)).isoformat(),
        end=(now + timedelta(seconds=20)).isoformat(),
    )
    assert policy.evaluate(near, recent_requests=0).outcome == "accepted"


def test_live_cap(config: AgentConfig) -> None:
    policy = Policy.open(config)
    assert policy.live_cap(stream_request(max_seconds=30)) == 30
    assert policy.live_cap(stream_request(max_seconds=3600)) == 600


def test_listings_never_show_private_cameras(config: AgentConfig) -> None:
    policy = Policy.open(config)
    listed = policy.listings(lambda camera: CameraFacts(online=camera == "front-door"))
    assert [c.id for c in listed] == ["front-door", "parking-lot", "side-door"]
    assert listed[0].online and listed[0].live and listed[0].location is not None
    policy.set_sharing("parking-lot", SharingMode.PRIVATE, live=None, by="owner")
    assert "parking-lot" not in [c.id for c in policy.listings(lambda _c: CameraFacts())]


def test_state_file_is_readable_json(config: AgentConfig) -> None:
    policy = Policy.open(config)
    policy.set_sharing("side-door", SharingMode.INTEGRATED, live=True, by="uid 0 (root)")
    saved = json.loads((config.owner_dir / STATE_FILE).read_text())
    assert saved["sharing"]["side-door"]["live"] is True
    assert saved["sharing"]["side-door"]["by"] == "uid 0 (root)"


def test_an_owner_file_left_in_the_state_directory_blocks_start(config: AgentConfig) -> None:
    """Older versions kept the owner's choices where the service can write them: the daemon
    refuses to guess which copy is the owner's and says what root must do."""
    (Path(config.state_dir) / STATE_FILE).write_text('{"version": 1, "paused": true}')
    with pytest.raises(OwnerStateError, match="move that file to") as caught:
        Policy.open(config)
    assert str(config.owner_dir / STATE_FILE) in str(caught.value)
    (config.owner_dir).mkdir()
    (config.owner_dir / STATE_FILE).write_text('{"version": 1}')
    assert not Policy.open(config).paused  # the owner directory's copy wins


def test_decisions_are_recorded_and_adopted(config: AgentConfig) -> None:
    daemon = Policy.open(config)
    owner = Policy.open(config)
    owner.record_decision("req-1", "approved", by="uid 0 (root)")
    owner.set_sharing("front-door", SharingMode.PRIVATE, live=None, by="uid 0 (root)")
    assert front_door(daemon).mode is SharingMode.INTEGRATED
    # The daemon adopts what the owner recorded rather than writing it again.
    stamp = (config.owner_dir / STATE_FILE).stat().st_mtime_ns
    daemon.set_sharing("front-door", SharingMode.PRIVATE, live=None, by="uid 0 (root)")
    daemon.record_decision("req-1", "approved", by="uid 0 (root)")
    assert (config.owner_dir / STATE_FILE).stat().st_mtime_ns == stamp
    decision = daemon.decision("req-1")
    assert decision is not None and decision.decision == "approved"
    assert front_door(daemon).source == "owner"
    mode = (config.owner_dir / STATE_FILE).stat().st_mode & 0o777
    assert mode == 0o644
