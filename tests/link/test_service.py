"""The request service end to end without the broker: verification, policy, holds, approvals,
the ledger, and the events the RTCC would receive."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.config import AgentConfig
from agent.control import OwnerWebhook
from agent.ledger import Entry, Kind, read_entries
from agent.link import DeliveryHandlers, FootageRequest, Job, OwnerActionError
from agent.store import ClipStore
from agent.wire import FINAL_STATES, Event, EventState, RejectCode
from agent.wire.requests import StreamRequest
from tests.support.immutable import make_immutable, make_mutable, mutable_again
from tests.support.link_service import FakeClock, Site, running_service, site_config
from tests.support.rtcc import (
    RTCC,
    RtccTestKey,
    alg_none,
    forged,
    hs256_with_public_key,
    jti_of,
    make_claims,
    make_request,
    make_token,
    rfc3339,
    tampered,
)


def ledger(site: Site | AgentConfig) -> list[Entry]:
    config = site.config if isinstance(site, Site) else site
    return list(read_entries(Path(config.state_dir) / "ledger"))


def ledger_codes(site: Site, jti: str) -> set[str]:
    return {
        e.data["code"]
        for e in ledger(site)
        if e.data.get("jti") == jti and e.data.get("code") is not None
    }


def assert_stream_well_formed(events: list[Event]) -> None:
    """seq from 1 without gaps, at most one final state, nothing after it."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    finals = [i for i, e in enumerate(events) if e.state in FINAL_STATES]
    assert len(finals) <= 1
    if finals:
        assert finals[0] == len(events) - 1


class RecordingHandler:
    """A delivery handler for tests: records calls; the test drives the job it was given."""

    def __init__(self) -> None:
        self.started: list[tuple[FootageRequest, Job]] = []
        self.cancelled: list[str] = []
        self._changed = asyncio.Event()

    async def start(self, request: FootageRequest, job: Job) -> None:
        self.started.append((request, job))
        self._changed.set()

    async def cancel(self, request_id: str) -> None:
        self.cancelled.append(request_id)
        self._changed.set()

    async def wait(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(20):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


def handlers_with(handler: RecordingHandler) -> DeliveryHandlers:
    return DeliveryHandlers(clip=handler, snapshot=handler, stream=handler)


@pytest.fixture
def config(tmp_path: Path) -> AgentConfig:
    return site_config(tmp_path / "state")


async def test_integrated_clip_is_accepted_with_a_hold(config: AgentConfig) -> None:
    handler = RecordingHandler()
    async with running_service(config, handlers=handlers_with(handler)) as site:
        payload = make_request("clip", camera="front-door")
        jti = jti_of(payload)
        await site.service.handle(payload)
        event = await site.sink.wait_for(jti, "accepted")
        assert (event.seq, event.iss, event.code) == (1, "site-1", None)
        camera, start, end = site.active_holds()[f"request-{jti}"]
        assert camera == "front-door" and end - start == timedelta(minutes=5)
        await handler.wait(lambda: len(handler.started) == 1)
        assert handler.started[0][0].jti == jti
        kinds = [e.kind for e in ledger(site) if e.data.get("jti") == jti]
        assert kinds == ["request_received", "hold_placed", "decision"]


async def test_registry_clip_waits_for_the_owner_then_approved(config: AgentConfig) -> None:
    handler = RecordingHandler()
    async with running_service(config, handlers=handlers_with(handler)) as site:
        payload = make_request("clip", camera="parking-lot")
        jti = jti_of(payload)
        await site.service.handle(payload)
        await site.sink.wait_for(jti, "pending_approval")
        assert f"request-{jti}" in site.active_holds(), "a pending clip holds its window"
        await asyncio.sleep(0.05)
        assert handler.started == [], "nothing is delivered before approval"
        record = await site.owner.approve(jti[:8], by="uid 0 (root)")
        assert record.state is EventState.APPROVED
        assert site.sink.states(jti) == ["pending_approval", "approved"]
        await handler.wait(lambda: len(handler.started) == 1)
        approval = [e for e in ledger(site) if e.kind == Kind.APPROVAL]
        assert approval[0].data["by"] == "uid 0 (root)" and approval[0].data["jti"] == jti


async def test_snapshot_of_a_past_moment_holds_the_minute_before_it(config: AgentConfig) -> None:
    async with running_service(config) as site:
        at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        payload = make_request("snapshot", camera="parking-lot", at=rfc3339(at))
        jti = jti_of(payload)
        await site.service.handle(payload)
        camera, start, end = site.active_holds()[f"request-{jti}"]
        assert camera == "parking-lot"
        assert (start, end) == (at - timedelta(minutes=1), at + timedelta(seconds=1))
        now_snapshot = make_request("snapshot", camera="parking-lot")
        await site.service.handle(now_snapshot)
        assert f"request-{jti_of(now_snapshot)}" not in site.active_holds()
        await site.owner.deny(jti, by="owner")
        assert f"request-{jti}" not in site.active_holds()


async def test_deny_ends_the_request_and_releases_the_hold(config: AgentConfig) -> None:
    async with running_service(config) as site:
        payload = make_request("clip", camera="parking-lot")
        jti = jti_of(payload)
        await site.service.handle(payload)
        await site.owner.deny(jti, reason="not this one", by="owner")
        event = await site.sink.wait_for(jti, "rejected")
        assert (event.code, event.message, event.seq) == (
            RejectCode.DENIED_BY_OWNER,
            "not this one",
            2,
        )
        assert site.active_holds() == {}
        kinds = [e.kind for e in ledger(site) if e.data.get("jti") == jti]
        assert kinds[-3:] == ["denial", "request_closed", "hold_released"]
        with pytest.raises(OwnerActionError) as caught:
            await site.owner.approve(jti, by="owner")
        assert caught.value.code == "not_pending"


async def test_owner_ids_must_be_known_and_unambiguous(config: AgentConfig) -> None:
    async with running_service(config) as site:
        for ident in ("abc", "ffffffff-0000"):
            with pytest.raises(OwnerActionError) as caught:
                await site.owner.approve(ident, by="owner")
            assert caught.value.code == "not_found"
        first = "aaaabbbb-0000-4000-8000-000000000001"
        second = "aaaabbbb-1111-4000-8000-000000000002"
        for jti in (first, second):
            await site.service.handle(make_request("clip", camera="parking-lot", jti=jti))
        with pytest.raises(OwnerActionError) as caught:
            await site.owner.approve("aaaabbbb", by="owner")
        assert caught.value.code == "ambiguous"
        record = await site.owner.approve("aaaabbbb-1", by="owner")
        assert record.jti == second


@pytest.mark.parametrize("answer", ["approve", "deny", "expire"])
async def test_pending_request_survives_a_restart(config: AgentConfig, answer: str) -> None:
    payload = make_request("clip", camera="parking-lot")
    jti = jti_of(payload)
    async with running_service(config) as site:
        await site.service.handle(payload)
        await site.sink.wait_for(jti, "pending_approval")
    clock = FakeClock()
    if answer == "expire":
        clock.advance(timedelta(hours=1))  # the daemon was down past the request's exp
    handler = RecordingHandler()
    async with running_service(config, clock=clock, handlers=handlers_with(handler)) as site:
        if answer == "approve":
            await site.owner.approve(jti, by="owner")
            assert site.sink.states(jti) == ["approved"]
            assert site.sink.of(jti)[0].seq == 2, "seq continues across the restart"
            await handler.wait(lambda: len(handler.started) == 1)
        elif answer == "deny":
            await site.owner.deny(jti, by="owner")
            event = await site.sink.wait_for(jti, "rejected")
            assert event.code is RejectCode.DENIED_BY_OWNER and event.seq == 2
        else:
            event = await site.sink.wait_for(jti, "rejected")
            assert event.code is RejectCode.APPROVAL_EXPIRED and event.seq == 2
            assert site.active_holds() == {}
            with pytest.raises(OwnerActionError):
                await site.owner.approve(jti, by="owner")


async def test_pending_request_expires_on_its_own(config: AgentConfig) -> None:
    async with running_service(config) as site:
        now = int(time.time())
        payload = make_request("clip", camera="parking-lot", iat=now, exp=now + 2)
        jti = jti_of(payload)
        await site.service.handle(payload)
        event = await site.sink.wait_for(jti, "rejected")
        assert event.code is RejectCode.APPROVAL_EXPIRED
        assert site.active_holds() == {}
        assert_stream_well_formed(site.sink.of(jti))
        assert RejectCode.APPROVAL_EXPIRED.value in ledger_codes(site, jti)


async def test_approval_after_exp_is_refused(config: AgentConfig) -> None:
    clock = FakeClock()
    async with running_service(config, clock=clock) as site:
        payload = make_request("clip", camera="parking-lot")
        jti = jti_of(payload)
        await site.service.handle(payload)
        clock.advance(timedelta(hours=1))
        with pytest.raises(OwnerActionError) as caught:
            await site.owner.approve(jti, by="owner")
        assert caught.value.code == "expired"
        assert site.sink.of(jti)[-1].code is RejectCode.APPROVAL_EXPIRED


WEEK = 7 * 24 * 3600


async def test_a_clip_request_waits_for_the_owner_as_long_as_its_lifetime(
    config: AgentConfig,
) -> None:
    """Not 10 minutes: a week-long request is still approvable days later, across a restart,
    with its window held all along."""
    clock = FakeClock()
    now = int(clock())
    payload = make_request("clip", camera="parking-lot", iat=now, exp=now + WEEK)
    jti = jti_of(payload)
    async with running_service(config, clock=clock) as site:
        await site.service.handle(payload)
        await site.sink.wait_for(jti, "pending_approval")
        clock.advance(timedelta(hours=1))
    clock.advance(timedelta(days=3))  # the daemon was down for days
    handler = RecordingHandler()
    async with running_service(config, clock=clock, handlers=handlers_with(handler)) as site:
        await asyncio.sleep(0.05)
        assert site.sink.of(jti) == [], "still waiting after the restart"
        assert f"request-{jti}" in site.active_holds(), "the hold is kept while it waits"
        record = await site.owner.approve(jti, by="owner")
        assert record.state is EventState.APPROVED
        await handler.wait(lambda: len(handler.started) == 1)


async def test_the_owners_approval_wait_shortens_a_long_request(tmp_path: Path) -> None:
    config = site_config(tmp_path / "state", approval_wait="2s")
    assert config.policy.approval_wait == timedelta(seconds=2)
    async with running_service(config) as site:
        now = int(time.time())
        payload = make_request("clip", camera="parking-lot", iat=now, exp=now + WEEK)
        jti = jti_of(payload)
        await site.service.handle(payload)
        await site.sink.wait_for(jti, "pending_approval")
        assert f"request-{jti}" in site.active_holds()
        event = await site.sink.wait_for(jti, "rejected")
        assert event.code is RejectCode.APPROVAL_EXPIRED
        assert event.message is not None and "approval wait (2s)" in event.message
        assert site.active_holds() == {}, "the hold ends with the wait"
        assert_stream_well_formed(site.sink.of(jti))
        kinds = [e.kind for e in ledger(site) if e.data.get("jti") == jti]
        assert kinds[-2:] == ["request_closed", "hold_released"]
        closed = [e for e in ledger(site) if e.kind == "request_closed" and e.data["jti"] == jti]
        assert closed[0].data["code"] == RejectCode.APPROVAL_EXPIRED.value
        with pytest.raises(OwnerActionError):
            await site.owner.approve(jti, by="owner")


async def test_the_approval_wait_counts_from_arrival_across_a_restart(tmp_path: Path) -> None:
    config = site_config(tmp_path / "state", approval_wait="1h")
    now = int(time.time())
    payload = make_request("clip", camera="parking-lot", iat=now, exp=now + WEEK)
    jti = jti_of(payload)
    async with running_service(config) as site:
        await site.service.handle(payload)
        await site.sink.wait_for(jti, "pending_approval")
    clock = FakeClock()
    clock.advance(timedelta(minutes=59))
    async with running_service(config, clock=clock) as site:
        await asyncio.sleep(0.05)
        assert site.sink.of(jti) == [] and f"request-{jti}" in site.active_holds()
    clock.advance(timedelta(minutes=2))
    async with running_service(config, clock=clock) as site:
        event = await site.sink.wait_for(jti, "rejected")
        assert event.code is RejectCode.APPROVAL_EXPIRED and event.seq == 2
        assert site.active_holds() == {}


@pytest.mark.parametrize("wait", ["0s", "-5m"])
def test_approval_wait_must_be_positive(tmp_path: Path, wait: str) -> None:
    with pytest.raises(ValueError, match="approval_wait"):
        site_config(tmp_path / "state", approval_wait=wait)


def _verification_cases() -> list[tuple[str, Callable[[], bytes], RejectCode]]:
    now = int(time.time())
    return [
        ("forged signature", lambda: forged(make_claims()), RejectCode.BAD_SIGNATURE),
        ("edited claims", lambda: tampered(make_token(), camera="x"), RejectCode.BAD_SIGNATURE),
        (
            "unknown kid",
            lambda: make_request(key=RtccTestKey.generate()),
            RejectCode.UNKNOWN_KEY,
        ),
        ("alg none", lambda: alg_none(make_claims()), RejectCode.BAD_ALGORITHM),
        (
            "HS256 with public key",
            lambda: hs256_with_public_key(make_claims()),
            RejectCode.BAD_ALGORITHM,
        ),
        ("expired", lambda: make_request(iat=now - 900, exp=now - 120), RejectCode.EXPIRED),
        (
            "not yet valid",
            lambda: make_request(iat=now + 600, exp=now + 900),
            RejectCode.NOT_YET_VALID,
        ),
        (
            "lifetime too long",
            lambda: make_request("stream", iat=now, exp=now + 3600),
            RejectCode.LIFETIME_TOO_LONG,
        ),
        ("wrong audience", lambda: make_request(aud="site-9"), RejectCode.WRONG_AUDIENCE),
        ("wrong issuer", lambda: make_request(iss="https://x"), RejectCode.WRONG_ISSUER),
        ("malformed claims", lambda: make_request(camera=["a"]), RejectCode.MALFORMED),
        ("unknown command", lambda: make_request("reboot"), RejectCode.UNKNOWN_COMMAND),
    ]


@pytest.mark.parametrize(
    ("name", "build", "code"),
    _verification_cases(),
    ids=[case[0] for case in _verification_cases()],
)
async def test_verification_rejections_are_answered_and_recorded(
    config: AgentConfig, name: str, build: Callable[[], bytes], code: RejectCode
) -> None:
    async with running_service(config) as site:
        payload = build()
        jti = jti_of(payload)
        await site.service.handle(payload)
        event = await site.sink.wait_for(jti, "rejected")
        assert event.code is code and event.seq == 1 and event.message
        received = [e for e in ledger(site) if e.kind == Kind.REQUEST_RECEIVED]
        assert received[-1].data["code"] == code.value
        assert received[-1].data["jti"] == jti
        assert site.service.counters.rejected[code.value] == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not a jwt",
        b"x" * 20000,
        b"\x00\xff" * 100,
        b"eyJhbGciOiJFZERTQSJ9.eyJ9.sig",
    ],
)
async def test_unreadable_payloads_get_no_event_but_are_recorded(
    config: AgentConfig, payload: bytes
) -> None:
    async with running_service(config) as site:
        await site.service.handle(payload)
        assert site.sink.events == []
        entry = ledger(site)[-1]
        assert entry.kind == Kind.UNPARSEABLE
        assert entry.data["bytes"] == len(payload) and entry.data["code"] == "malformed"
        assert site.service.counters.unparseable == 1


async def test_malformed_json_claims_signed_by_the_rtcc(config: AgentConfig) -> None:
    async with running_service(config) as site:
        token = RTCC.sign_raw({"alg": "EdDSA", "kid": RTCC.kid}, b'{"jti": "x", oops}')
        await site.service.handle(token.encode())
        assert site.sink.events == []
        assert ledger(site)[-1].kind == Kind.UNPARSEABLE


async def test_a_replay_is_recorded_but_never_answered_under_the_original_id(
    config: AgentConfig,
) -> None:
    payload = make_request("clip", camera="front-door")
    jti = jti_of(payload)
    async with running_service(config) as site:
        await site.service.handle(payload)
        await site.service.handle(payload)
        assert site.sink.states(jti) == ["accepted"]
        assert ledger_codes(site, jti) == {"replayed"}
    async with running_service(config) as site:
        await site.service.handle(payload)
        assert site.sink.events == []
        codes = [e.data.get("code") for e in ledger(site) if e.data.get("jti") == jti]
        assert codes.count("replayed") == 2


async def test_a_forgery_reusing_a_real_id_is_not_answered(config: AgentConfig) -> None:
    async with running_service(config) as site:
        token = make_token("clip", camera="front-door")
        jti = jti_of(token)
        await site.service.handle(token.encode())
        await site.service.handle(tampered(token, camera="stockroom"))
        await site.service.handle(forged(make_claims(jti=jti)))
        assert site.sink.states(jti) == ["accepted"]
        assert ledger_codes(site, jti) == {"bad_signature"}


async def test_a_verified_rejection_is_answered_once(config: AgentConfig) -> None:
    async with running_service(config) as site:
        now = int(time.time())
        payload = make_request(iat=now - 900, exp=now - 120)
        jti = jti_of(payload)
        await site.service.handle(payload)
        await site.service.handle(payload)  # a QoS 1 redelivery
        assert site.sink.states(jti) == ["rejected"]


def _policy_cases() -> list[tuple[str, dict[str, Any], RejectCode]]:
    now = datetime.now(UTC)
    return [
        ("unknown camera", {"cmd": "clip", "camera": "garage"}, RejectCode.UNKNOWN_CAMERA),
        ("private camera", {"cmd": "clip", "camera": "stockroom"}, RejectCode.NOT_SHARED),
        ("private snapshot", {"cmd": "snapshot", "camera": "stockroom"}, RejectCode.NOT_SHARED),
        (
            "stream from registry",
            {"cmd": "stream", "camera": "parking-lot"},
            RejectCode.LIVE_NOT_ALLOWED,
        ),
        (
            "stream, live off",
            {"cmd": "stream", "camera": "side-door"},
            RejectCode.LIVE_NOT_ALLOWED,
        ),
        (
            "window too long",
            {
                "cmd": "clip",
                "start": rfc3339(now - timedelta(hours=2)),
                "end": rfc3339(now - timedelta(minutes=20)),
            },
            RejectCode.WINDOW_TOO_LONG,
        ),
        (
            "window in future",
            {
                "cmd": "clip",
                "start": rfc3339(now - timedelta(minutes=1)),
                "end": rfc3339(now + timedelta(minutes=5)),
            },
            RejectCode.WINDOW_IN_FUTURE,
        ),
        (
            "snapshot in future",
            {"cmd": "snapshot", "at": rfc3339(now + timedelta(minutes=5))},
            RejectCode.WINDOW_IN_FUTURE,
        ),
        (
            "upload host",
            {"cmd": "clip", "upload": {"url": "https://evil.example/put"}},
            RejectCode.UPLOAD_NOT_ALLOWED,
        ),
        (
            "LAN upload",
            {"cmd": "snapshot", "upload": {"url": "https://192.168.1.10/put"}},
            RejectCode.UPLOAD_NOT_ALLOWED,
        ),
        (
            "plain http upload",
            {"cmd": "clip", "upload": {"url": "http://uploads.rtcc.test/put"}},
            RejectCode.UPLOAD_NOT_ALLOWED,
        ),
        (
            "manifest host",
            {
                "cmd": "clip",
                "upload": {
                    "url": "https://uploads.rtcc.test/put",
                    "manifest_url": "https://evil.example/m",
                },
            },
            RejectCode.UPLOAD_NOT_ALLOWED,
        ),
        (
            "relay host",
            {"cmd": "stream", "relay": {"url": "wss://evil.example/in", "token": "t" * 32}},
            RejectCode.UPLOAD_NOT_ALLOWED,
        ),
        (
            "plain ws relay",
            {"cmd": "stream", "relay": {"url": "ws://relay.rtcc.test/in", "token": "t" * 32}},
            RejectCode.UPLOAD_NOT_ALLOWED,
        ),
    ]


@pytest.mark.parametrize(
    "name", [case[0] for case in _policy_cases()], ids=[case[0] for case in _policy_cases()]
)
async def test_policy_rejections(config: AgentConfig, name: str) -> None:
    # The cases are built now, not at collection: their windows are relative to the present,
    # and a long test session would otherwise put "five minutes from now" in the past.
    _, claims, code = next(case for case in _policy_cases() if case[0] == name)
    async with running_service(config) as site:
        cmd = claims.pop("cmd")
        payload = make_request(cmd, **claims)
        jti = jti_of(payload)
        await site.service.handle(payload)
        event = await site.sink.wait_for(jti, "rejected")
        assert event.code is code and event.seq == 1
        decision = [e for e in ledger(site) if e.kind == Kind.DECISION][-1]
        assert decision.data["code"] == code.value and decision.data["outcome"] == "rejected"
        assert site.active_holds() == {}, "a refused clip holds nothing"


async def test_loopback_destinations_may_be_plain(config: AgentConfig) -> None:
    async with running_service(config) as site:
        clip = make_request("clip", upload={"url": "http://127.0.0.1:8080/put"})
        stream = make_request("stream", relay={"url": "ws://127.0.0.1:9000/in", "token": "t" * 32})
        for payload in (clip, stream):
            await site.service.handle(payload)
            await site.sink.wait_for(jti_of(payload), "accepted")


async def test_rate_limited_per_issuer(tmp_path: Path) -> None:
    config = site_config(tmp_path / "state", requests_per_hour=3)
    async with running_service(config) as site:
        accepted = [make_request("snapshot") for _ in range(3)]
        for payload in accepted:
            await site.service.handle(payload)
        limited = make_request("snapshot")
        await site.service.handle(limited)
        event = await site.sink.wait_for(jti_of(limited), "rejected")
        assert event.code is RejectCode.RATE_LIMITED
        again = make_request("snapshot")
        await site.service.handle(again)
        assert (await site.sink.wait_for(jti_of(again), "rejected")).code is RejectCode.RATE_LIMITED
    async with running_service(config) as site:
        later = make_request("snapshot")
        await site.service.handle(later)
        assert (await site.sink.wait_for(jti_of(later), "rejected")).code is RejectCode.RATE_LIMITED
        cancel = make_request("cancel", target=jti_of(accepted[0]))
        await site.service.handle(cancel)
        await site.sink.wait_for(jti_of(cancel), "completed")  # stopping is never rate limited
    clock = FakeClock()
    clock.advance(timedelta(hours=1, minutes=1))
    async with running_service(config, clock=clock) as site:
        fresh = make_request("snapshot", iat=int(clock()), exp=int(clock()) + 600)
        await site.service.handle(fresh)
        await site.sink.wait_for(jti_of(fresh), "accepted")


async def test_pause_refuses_footage_until_resumed(config: AgentConfig) -> None:
    async with running_service(config) as site:
        until = (await site.owner.pause(duration=None, by="owner")).until
        assert until is None
        clip = make_request("clip")
        await site.service.handle(clip)
        event = await site.sink.wait_for(jti_of(clip), "rejected")
        assert event.code is RejectCode.PAUSED
        inventory = make_request("inventory")
        await site.service.handle(inventory)
        await site.sink.wait_for(jti_of(inventory), "completed")
        assert await site.owner.resume(by="owner")
        assert not await site.owner.resume(by="owner")
        clip = make_request("clip")
        await site.service.handle(clip)
        await site.sink.wait_for(jti_of(clip), "accepted")
        kinds = [e.kind for e in ledger(site)]
        assert "paused" in kinds and "resumed" in kinds
        assert site.publisher.status_published >= 1


async def test_timed_pause_resumes_by_itself(config: AgentConfig) -> None:
    async with running_service(config) as site:
        until = (await site.owner.pause(duration=timedelta(seconds=1), by="owner")).until
        # A pair, not `... and paused`: mypy would keep `paused` narrowed to True past the wait.
        assert (until is not None, site.service.policy.paused) == (True, True)
        site.publisher.status_changed.clear()
        await asyncio.wait_for(site.publisher.status_changed.wait(), 20)
        assert not site.service.policy.paused
        resumed = [e for e in ledger(site) if e.kind == Kind.RESUMED][-1]
        assert resumed.data == {"automatic": True, "by": "timer"}


async def test_timed_pause_ends_during_a_restart(config: AgentConfig) -> None:
    async with running_service(config) as site:
        await site.owner.pause(duration=timedelta(hours=2), by="owner")
    async with running_service(config) as site:
        assert site.service.policy.paused, "a pause survives a restart"
    clock = FakeClock()
    clock.advance(timedelta(hours=3))
    async with running_service(config, clock=clock) as site:
        assert not site.service.policy.paused
        resumed = [e for e in ledger(site) if e.kind == Kind.RESUMED]
        assert [e.data["automatic"] for e in resumed] == [True]


async def test_cancel_a_pending_request(config: AgentConfig) -> None:
    async with running_service(config) as site:
        target = make_request("clip", camera="parking-lot")
        await site.service.handle(target)
        cancel = make_request("cancel", target=jti_of(target))
        await site.service.handle(cancel)
        assert site.sink.states(jti_of(target)) == ["pending_approval", "cancelled"]
        assert site.sink.states(jti_of(cancel)) == ["completed"]
        assert site.active_holds() == {}
        with pytest.raises(OwnerActionError):
            await site.owner.approve(jti_of(target), by="owner")


async def test_cancel_a_request_in_delivery(config: AgentConfig) -> None:
    handler = RecordingHandler()
    async with running_service(config, handlers=handlers_with(handler)) as site:
        target = make_request("clip")
        await site.service.handle(target)
        await handler.wait(lambda: len(handler.started) == 1)
        job = handler.started[0][1]
        await site.service.handle(make_request("cancel", target=jti_of(target)))
        await handler.wait(lambda: handler.cancelled == [jti_of(target)])
        assert job.is_final
        await job.completed(manifest="late")  # a handler that did not notice in time
        assert site.sink.states(jti_of(target)) == ["accepted", "cancelled"]


@pytest.mark.parametrize("target", ["unknown", "final"])
async def test_cancel_of_nothing_to_cancel(config: AgentConfig, target: str) -> None:
    async with running_service(config) as site:
        if target == "unknown":
            cancel = make_request("cancel")
            await site.service.handle(cancel)
            event = await site.sink.wait_for(jti_of(cancel), "rejected")
            assert event.code is RejectCode.MALFORMED
        else:
            rejected = make_request("clip", camera="stockroom")
            await site.service.handle(rejected)
            cancel = make_request("cancel", target=jti_of(rejected))
            await site.service.handle(cancel)
            event = await site.sink.wait_for(jti_of(cancel), "completed")
            assert event.message == "request already rejected"
            assert site.sink.states(jti_of(rejected)) == ["rejected"]


async def test_inventory_lists_what_is_shared(config: AgentConfig) -> None:
    async with running_service(config) as site:
        payload = make_request("inventory")
        await site.service.handle(payload)
        event = await site.sink.wait_for(jti_of(payload), "completed")
        assert event.cameras is not None
        assert [c.id for c in event.cameras] == ["front-door", "parking-lot", "side-door"]
        assert site.publisher.registry_published == 1


async def test_delivery_reports_through_its_job(config: AgentConfig) -> None:
    handler = RecordingHandler()
    async with running_service(config, handlers=handlers_with(handler)) as site:
        clip = make_request("clip")
        stream = make_request("stream", max_seconds=3600)
        await site.service.handle(clip)
        await site.service.handle(stream)
        await handler.wait(lambda: len(handler.started) == 2)
        by_id = {request.jti: (request, job) for request, job in handler.started}
        request, job = by_id[jti_of(stream)]
        assert isinstance(request, StreamRequest) and request.max_seconds == 600, (
            "live sessions are capped at policy.max_live"
        )
        await job.streaming(datetime.now(UTC))
        await job.ended("max_seconds", seconds=600.0)
        await job.failed(RejectCode.INTERNAL, "too late")
        assert site.sink.states(jti_of(stream)) == ["accepted", "streaming", "ended"]
        _request, job = by_id[jti_of(clip)]
        await job.progress(100, 1000)
        await job.uploaded(1000, host="uploads.rtcc.test")
        await job.completed(manifest="eyJ.manifest.sig")
        events = site.sink.of(jti_of(clip))
        assert [e.state.value for e in events] == ["accepted", "progress", "completed"]
        assert events[-1].manifest == "eyJ.manifest.sig"
        for jti in (jti_of(clip), jti_of(stream)):
            assert_stream_well_formed(site.sink.of(jti))
        assert site.active_holds() == {}, "a finished clip releases its hold"
        kinds = {e.kind: e.data for e in ledger(site)}
        assert kinds[Kind.UPLOAD]["bytes"] == 1000
        assert kinds[Kind.LIVE_SESSION]["seconds"] == 600.0


async def test_placeholder_delivery_never_claims_completion(config: AgentConfig) -> None:
    async with running_service(config) as site:
        payload = make_request("clip")
        await site.service.handle(payload)
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert site.sink.states(jti_of(payload)) == ["accepted"]
        assert site.owner.status()["in_delivery"] == 1


async def test_deliveries_resume_after_a_restart(config: AgentConfig) -> None:
    payload = make_request("clip")
    async with running_service(config) as site:
        await site.service.handle(payload)
    handler = RecordingHandler()
    async with running_service(config, handlers=handlers_with(handler)):
        await handler.wait(lambda: len(handler.started) == 1)
        assert handler.started[0][0].jti == jti_of(payload)


class _Broken:
    async def start(self, request: FootageRequest, job: Job) -> None:
        raise RuntimeError("boom")

    async def cancel(self, request_id: str) -> None:
        raise RuntimeError("boom")


async def test_a_failing_handler_fails_the_request(config: AgentConfig) -> None:
    broken = _Broken()
    handlers = DeliveryHandlers(clip=broken, snapshot=broken, stream=broken)
    async with running_service(config, handlers=handlers) as site:
        payload = make_request("clip")
        await site.service.handle(payload)
        event = await site.sink.wait_for(jti_of(payload), "failed")
        assert event.code is RejectCode.INTERNAL
        assert_stream_well_formed(site.sink.of(jti_of(payload)))


class _FailingHolds:
    def place_hold(self, *args: Any, **kwargs: Any) -> None:
        raise OSError("database is locked")

    def release_hold(self, hold_id: str) -> bool:
        raise OSError("database is locked")


async def test_no_hold_no_acceptance(config: AgentConfig) -> None:
    async with running_service(config, holds=_FailingHolds()) as site:
        payload = make_request("clip")
        await site.service.handle(payload)
        event = await site.sink.wait_for(jti_of(payload), "rejected")
        assert event.code is RejectCode.INTERNAL


class _FailingSink:
    def __init__(self) -> None:
        self.calls = 0

    async def emit(self, event: Event) -> None:
        self.calls += 1
        raise ConnectionError("broker gone")


async def test_a_failing_sink_does_not_stop_the_service(config: AgentConfig) -> None:
    sink = _FailingSink()
    async with running_service(config, sink=sink) as site:
        for _ in range(3):
            await site.service.handle(make_request("clip"))
        assert sink.calls == 3
        assert site.owner.status()["in_delivery"] == 3


async def test_owner_webhook_gets_each_pending_request(config: AgentConfig) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site_server = web.TCPSite(runner, "127.0.0.1", 0)
    await site_server.start()
    port = runner.addresses[0][1]
    try:
        webhook = OwnerWebhook(f"http://127.0.0.1:{port}/hook", site_id="site-1")
        async with running_service(config, notifier=webhook) as site:
            payload = make_request("clip", camera="parking-lot")
            await site.service.handle(payload)
            body = await asyncio.wait_for(received.get(), 20)
            assert body["site"] == "site-1" and body["event"] == "pending_approval"
            assert body["request"]["id"] == jti_of(payload)
            assert body["request"]["camera"] == "parking-lot"
            assert "X-Sig" not in json.dumps(body), "upload URLs never leave in the webhook"
            await site.service.handle(make_request("clip", camera="front-door"))
            assert received.empty(), "only pending requests are sent"
    finally:
        await runner.cleanup()


async def test_unreachable_webhook_changes_nothing(config: AgentConfig) -> None:
    webhook = OwnerWebhook("http://127.0.0.1:9/hook", site_id="site-1", timeout=2)
    async with running_service(config, notifier=webhook) as site:
        payload = make_request("clip", camera="parking-lot")
        await site.service.handle(payload)
        await webhook.notify({"id": "direct"})  # returns after logging, never raises
        assert site.sink.states(jti_of(payload)) == ["pending_approval"]


def test_webhook_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        OwnerWebhook("file:///etc/passwd", site_id="site-1")


async def test_status_reports_what_the_owner_needs(config: AgentConfig) -> None:
    async with running_service(config) as site:
        await site.service.handle(make_request("clip", camera="parking-lot"))
        await site.service.handle(b"junk")
        status = site.owner.status()
        assert status["pending"] == 1 and status["paused"] is False
        assert status["ledger"]["seq"] == site.service.ledger_head.seq > 0
        assert status["since_start"] == {
            "handled": 2,
            "unparseable": 1,
            "failures": 0,
            "rejected": {"malformed": 1},
        }
        assert {c["camera"]: c["mode"] for c in status["cameras"]}["stockroom"] == "private"


async def test_every_code_verification_and_policy_produce_is_in_the_ledger(tmp_path: Path) -> None:
    """The issue's list, through one service: each crafted request's code ends in the ledger."""
    config = site_config(tmp_path / "state", requests_per_hour=40)
    async with running_service(config) as site:
        service, owner = site.service, site.owner
        await owner.pause(duration=None, by="owner")
        await service.handle(make_request("clip"))
        await owner.resume(by="owner")
        sent = [build() for _name, build, _code in _verification_cases()]
        for _name, claims, _code in _policy_cases():
            cmd = claims.pop("cmd")
            sent.append(make_request(cmd, **claims))
        verified = sent[-1]  # refused by policy, so its id is taken
        sent += [b"x" * 20000, b"{not a jwt", verified]
        for payload in sent:
            await service.handle(payload)
        pending = make_request("clip", camera="parking-lot")
        await service.handle(pending)
        await owner.deny(jti_of(pending), by="owner")
        now = int(time.time())
        expiring = make_request("clip", camera="parking-lot", iat=now, exp=now + 1)
        await service.handle(expiring)
        await site.sink.wait_for(jti_of(expiring), "rejected")
        for _ in range(41):  # at most the hour's allowance, then one more
            if any(e.code is RejectCode.RATE_LIMITED for e in site.sink.events):
                break
            await service.handle(make_request("snapshot"))
        assert service.counters.failures == 0
    codes = {e.data.get("code") for e in ledger(config)} - {None}
    expected = {
        code.value
        for code in RejectCode
        if code
        not in {
            RejectCode.OUT_OF_RETENTION,
            RejectCode.BUSY,
            RejectCode.CAMERA_OFFLINE,
            RejectCode.UPLOAD_FAILED,
            RejectCode.INTERNAL,
        }
    }
    assert expected - codes == set()


# A claim whose member name is a lone surrogate (typed: a bare `**{...}` could be `key=`).
ODD_MEMBER: dict[str, Any] = {"x\ud83d": 1}


@pytest.mark.parametrize(
    ("where", "build"),
    [
        ("camera", lambda: make_request("clip", camera="front\ud83d")),
        ("iss", lambda: make_request("clip", iss="https://rtcc\ud83d.test")),
        ("kid", lambda: make_request("clip", headers={"kid": "k\ud83d"})),
        ("member name", lambda: make_request("clip", **ODD_MEMBER)),
    ],
)
async def test_text_that_is_not_unicode_is_malformed_and_recorded(
    config: AgentConfig, where: str, build: Callable[[], bytes]
) -> None:
    """A lone UTF-16 surrogate (`\\ud83d`, valid as a JSON escape, not as text) in a claim or
    in the unsigned header: refused as malformed, with an entry, never a traceback."""
    async with running_service(config) as site:
        payload = build()
        await site.service.handle(payload)
        assert site.service.counters.failures == 0
        entry = ledger(site)[-1]
        assert entry.kind == Kind.UNPARSEABLE
        assert entry.data["code"] == "malformed" and entry.data["bytes"] == len(payload)
        assert "not valid Unicode" in entry.data["message"]
        assert site.sink.events == []


class _LedgerTurnsReadOnly:
    """The real clip store's holds; right after the hold is placed, the ledger file becomes
    unwritable (a failing disk): the ledger fails mid-handling."""

    def __init__(self, store: Any, ledger_file: Path) -> None:
        self._store = store
        self._ledger_file = ledger_file

    def place_hold(self, *args: Any, **kwargs: Any) -> Any:
        placed = self._store.place_hold(*args, **kwargs)
        make_immutable(self._ledger_file)
        return placed

    def release_hold(self, hold_id: str) -> bool:
        released: bool = self._store.release_hold(hold_id)
        return released


async def test_a_ledger_failing_mid_handling_refuses_the_request(config: AgentConfig) -> None:
    """Issue 12, item 5: the request's arrival is recorded, then the ledger cannot be written:
    neither its hold nor its decision can be recorded, so nothing is delivered, the hold is
    released and the RTCC is told (`internal`) instead of the request vanishing."""
    handler = RecordingHandler()
    ledger_file = Path(config.state_dir) / "ledger" / "ledger.jsonl"
    store = ClipStore.from_config(config)
    holds = _LedgerTurnsReadOnly(store, ledger_file)
    try:
        with mutable_again(ledger_file):
            async with running_service(
                config, handlers=handlers_with(handler), holds=holds
            ) as site:
                payload = make_request("clip", camera="front-door")
                jti = jti_of(payload)
                assert await site.service.handle(payload) is True, "its arrival is recorded"
                event = await site.sink.wait_for(jti, "rejected")
                assert event.code is RejectCode.INTERNAL and "ledger" in (event.message or "")
                assert f"request-{jti}" not in site.active_holds()
                assert handler.started == []
                kinds = [e.kind for e in ledger(site) if e.data.get("jti") == jti]
                assert kinds == ["request_received"]
                make_mutable(ledger_file)
    finally:
        store.close()
