"""Every reject code, each from a request that is valid but for one thing (issue 12, item 6).

An RTCC that keeps to docs/protocol.md must get the code the protocol promises for the one
thing it got wrong — `live_not_allowed`, not `malformed` because some other claim was slightly
off. So each case sends two requests through the site's request service: the valid twin, which
must be admitted (`accepted` or `pending_approval`), and the same request with exactly one
change (or one owner action), which must be refused with exactly the expected code. The codes
that only arise after admission, while footage is delivered, are covered where delivery is
tested; the last test checks that the two lists together name every code.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.ledger import read_entries
from agent.wire import RejectCode
from agent.wire.constraints import collect
from tests.support.link_service import Site, running_service, site_config
from tests.support.rtcc import (
    RTCC,
    RtccTestKey,
    forged,
    hs256_with_public_key,
    jti_of,
    make_claims,
    rfc3339,
)

OTHER_KEY = RtccTestKey.generate()
ADMITTED = {"accepted", "pending_approval", "completed"}  # inventory completes at once


@dataclass(frozen=True)
class Case:
    code: RejectCode
    cmd: str
    # The valid twin's claims (on top of make_claims' complete, valid set).
    base: dict[str, Any] = field(default_factory=dict)
    # The one change: claim overrides (or a function of the valid claims giving them, for
    # times, so they are taken when the test runs, not when the module was imported), or a
    # function from the valid claims to a payload.
    change: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] = field(
        default_factory=dict
    )
    sign: Callable[[dict[str, Any]], bytes] | None = None
    # Or an owner action between the two requests (the second is then the twin, fresh jti).
    before_second: Callable[[Site], Awaitable[object]] | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    says: str = ""  # what the refusal's message must name


def _now() -> int:
    return int(time.time())


def _ago(minutes: float) -> str:
    return rfc3339(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes))


async def _pause(site: Site) -> object:
    return await site.owner.pause(duration=None, by="owner")


CASES: list[Case] = [
    Case(RejectCode.BAD_SIGNATURE, "clip", sign=forged),
    Case(RejectCode.UNKNOWN_KEY, "clip", sign=lambda c: OTHER_KEY.sign(c).encode()),
    Case(RejectCode.BAD_ALGORITHM, "clip", sign=hs256_with_public_key),
    Case(
        RejectCode.EXPIRED, "clip", change=lambda v: {"iat": v["iat"] - 1200, "exp": v["iat"] - 600}
    ),
    Case(
        RejectCode.NOT_YET_VALID,
        "clip",
        change=lambda v: {"iat": v["iat"] + 600, "exp": v["iat"] + 1200},
    ),
    Case(RejectCode.LIFETIME_TOO_LONG, "stream", change=lambda v: {"exp": v["iat"] + 16 * 60}),
    Case(RejectCode.WRONG_AUDIENCE, "clip", change={"aud": "site-2"}),
    Case(RejectCode.WRONG_ISSUER, "clip", change={"iss": "https://other-rtcc.test"}),
    # The issue's case: a relay token one character short of the table's minimum.
    Case(
        RejectCode.MALFORMED,
        "stream",
        change={"relay": {"url": "wss://relay.rtcc.test/ingest/1", "token": "t" * 15}},
        says="relay.token",
    ),
    Case(RejectCode.UNKNOWN_COMMAND, "inventory", change={"cmd": "erase"}),
    Case(RejectCode.UNKNOWN_CAMERA, "clip", change={"camera": "no-such-camera"}),
    Case(RejectCode.NOT_SHARED, "stream", change={"camera": "stockroom"}),
    Case(RejectCode.LIVE_NOT_ALLOWED, "stream", change={"camera": "side-door"}),
    Case(RejectCode.WINDOW_TOO_LONG, "clip", change=lambda _v: {"start": _ago(120)}),
    Case(
        RejectCode.WINDOW_IN_FUTURE,
        "clip",
        change=lambda _v: {"start": _ago(-55), "end": _ago(-60)},
    ),
    Case(
        RejectCode.UPLOAD_NOT_ALLOWED,
        "clip",
        change={"upload": {"url": "https://evil.example/put/x.mp4"}},
    ),
    Case(
        RejectCode.UPLOAD_NOT_ALLOWED,
        "stream",
        change={"relay": {"url": "wss://evil.example/ingest/1", "token": "t" * 32}},
    ),
    # The owner's and the limits' codes: the second request is the valid twin itself.
    Case(RejectCode.RATE_LIMITED, "clip", policy={"requests_per_hour": 1}),
    Case(RejectCode.PAUSED, "stream", before_second=_pause),
]
# Codes that arise once a request was admitted, and the tests that produce each of them.
AFTER_ADMISSION = {
    RejectCode.REPLAYED: "test_a_replay_is_refused_with_an_entry_and_no_event (below)",
    RejectCode.DENIED_BY_OWNER: "test_the_owner_s_answers (below)",
    RejectCode.APPROVAL_EXPIRED: "test_the_owner_s_answers (below)",
    RejectCode.OUT_OF_RETENTION: "tests/delivery/test_delivery.py, test_snapshot.py",
    RejectCode.CAMERA_OFFLINE: "tests/delivery/test_snapshot.py, tests/tunnel/test_live_session.py",
    RejectCode.UPLOAD_FAILED: "tests/delivery/test_delivery.py, tests/tunnel/test_live_session.py",
    RejectCode.INTERNAL: "tests/delivery/test_delivery.py",
    # Not produced by the site yet: the inbox's refusal when full comes with issue 12 item 5
    # (acknowledge only once the ledger entry is written), whose tests will produce it.
    RejectCode.BUSY: "issue 12 item 5",
}


def _payload(case: Case, claims: dict[str, Any]) -> bytes:
    if case.sign is not None:
        return case.sign(claims)
    return RTCC.sign(claims).encode()


def _fresh(claims: dict[str, Any]) -> dict[str, Any]:
    """The same request under a new id (a repeat would be `replayed`, not what is tested)."""
    out = dict(claims)
    out["jti"] = str(uuid.uuid4())
    if "upload" in out:
        out["upload"] = {
            "url": out["upload"]["url"].replace(claims["jti"], out["jti"]),
            "manifest_url": out["upload"]["manifest_url"].replace(claims["jti"], out["jti"]),
        }
    return out


def _codes_in_ledger(site: Site, jti: str) -> set[str]:
    entries = read_entries(Path(site.config.state_dir) / "ledger")
    return {str(e.data["code"]) for e in entries if e.data.get("jti") == jti and e.data.get("code")}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.code.value}-{c.cmd}" for c in CASES])
async def test_one_change_gives_exactly_its_code(tmp_path: Path, case: Case) -> None:
    config = site_config(tmp_path / "state", **case.policy)
    async with running_service(config) as site:
        valid = make_claims(case.cmd, **case.base)
        await site.service.handle(RTCC.sign(valid).encode())
        state = await _first_state(site, valid["jti"])
        assert state in ADMITTED, f"the valid twin was not admitted: {site.sink.of(valid['jti'])}"

        if case.before_second is not None:
            await case.before_second(site)
        broken = _fresh(valid)
        change = case.change(valid) if callable(case.change) else case.change
        broken.update(change)
        payload = _payload(case, broken)
        jti = jti_of(payload)
        await site.service.handle(payload)
        event = await site.sink.wait_for(jti, "rejected")
        assert event.code is case.code, (event.code, event.message)
        assert event.seq == 1 and event.message and case.says in event.message
        assert case.code.value in _codes_in_ledger(site, jti)


async def _first_state(site: Site, jti: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = site.sink.states(jti)
        if states:
            return states[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no event for {jti}")


async def test_a_replay_is_refused_with_an_entry_and_no_event(tmp_path: Path) -> None:
    async with running_service(site_config(tmp_path / "state")) as site:
        payload = RTCC.sign(make_claims("clip")).encode()
        jti = jti_of(payload)
        await site.service.handle(payload)
        assert await _first_state(site, jti) in ADMITTED
        await site.service.handle(payload)  # the very same request again
        assert RejectCode.REPLAYED.value in _codes_in_ledger(site, jti)
        assert site.sink.states(jti) == ["accepted"], "a replay must not start a second story"


@pytest.mark.parametrize("answer", ["deny", "expire"])
async def test_the_owner_s_answers(tmp_path: Path, answer: str) -> None:
    """A valid request on a registry camera waits for the owner; a denial or the request's
    expiry refuses it with its own code."""
    async with running_service(site_config(tmp_path / "state")) as site:
        lifetime = 600 if answer == "deny" else 2
        claims = make_claims("clip", camera="parking-lot", iat=_now(), exp=_now() + lifetime)
        await site.service.handle(RTCC.sign(claims).encode())
        assert await _first_state(site, claims["jti"]) == "pending_approval"
        if answer == "deny":
            await site.owner.deny(claims["jti"], by="owner")
        event = await site.sink.wait_for(claims["jti"], "rejected")
        expected = RejectCode.DENIED_BY_OWNER if answer == "deny" else RejectCode.APPROVAL_EXPIRED
        assert event.code is expected


def test_every_code_is_tested() -> None:
    tested = {case.code for case in CASES} | set(AFTER_ADMISSION)
    assert tested == set(RejectCode), set(RejectCode) - tested


def test_the_valid_twins_keep_to_the_constraints_table() -> None:
    """The twins are built from make_claims; the table of docs/protocol.md lists each of their
    claims (nothing the test relies on is outside the contract)."""
    listed = {claim.path.split(".")[0] for claim in collect()} | {"cmd"}
    for cmd in ("clip", "snapshot", "stream", "cancel", "inventory"):
        assert set(make_claims(cmd)) <= listed
