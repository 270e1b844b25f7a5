"""Generated payloads against the request service (over 5,000 in all): random bytes, random
JSON, mutated valid tokens, and tokens with a valid signature over random claims and headers.

Whatever arrives, the service must stay on its rejection path: no exception reaches its
catch-all (`counters.failures`), every payload leaves a ledger entry, every event is a valid
`Event`, and each request id's events count up from 1 with at most one final state, last.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.wire import FINAL_STATES, Event
from agent.wire.requests import COMMANDS
from tests.support.link_service import Site, running_service, site_config
from tests.support.rtcc import RTCC, b64url, make_claims, make_token

PER_STRATEGY = 1300  # four strategies: 5,200 payloads

SETTINGS = settings(
    max_examples=PER_STRATEGY,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def any_text(max_size: int) -> st.SearchStrategy[str]:
    """Text over every code point, lone surrogates included (hypothesis's default leaves them
    out): JSON can carry them as `\\ud83d` escapes, so the site must refuse them cleanly."""
    return st.text(st.characters() | st.characters(categories=["Cs"]), max_size=max_size)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text(40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text(12), inner, max_size=4),
    max_leaves=12,
)
CLAIM_NAMES = [
    "iss", "aud", "iat", "exp", "nbf", "jti", "cmd", "case", "camera", "requester", "reason",
    "start", "end", "upload", "relay", "max_seconds", "target", "at", "profile",
]  # fmt: skip


class Harness:
    """One running service for a whole hypothesis run, driven from synchronous test code."""

    def __init__(self, runner: asyncio.Runner, site: Site) -> None:
        self.runner = runner
        self.site = site
        self.payloads = 0

    def feed(self, payload: bytes) -> None:
        before_ledger = self.site.service.ledger.head.seq
        before_events = len(self.site.sink.events)
        self.runner.run(self.site.service.handle(payload))
        self.payloads += 1
        assert self.site.service.counters.failures == 0, "an exception escaped the rejection path"
        assert self.site.service.ledger.head.seq > before_ledger, "every payload is recorded"
        for event in self.site.sink.events[before_events:]:
            assert isinstance(event, Event)

    def check_streams(self) -> None:
        """Per id: the request's own events count up from 1 with at most one final state, last.

        Before them there may be single `rejected` answers with seq 1: tokens that failed
        before their signature checked out (a mutated copy handled before the original), each
        answered on its own since nothing proves they belong to the request.
        """
        streams: dict[str, list[Event]] = defaultdict(list)
        for event in self.site.sink.events:
            streams[event.req].append(event)
        for jti, events in streams.items():
            runs: list[list[Event]] = []
            for event in events:
                if event.seq == 1:
                    runs.append([])
                assert runs, (jti, "a stream must start at seq 1")
                runs[-1].append(event)
            for early in runs[:-1]:
                assert [e.state.value for e in early] == ["rejected"], (jti, early)
            last = runs[-1]
            assert [e.seq for e in last] == list(range(1, len(last) + 1)), (jti, last)
            finals = [i for i, event in enumerate(last) if event.state in FINAL_STATES]
            assert finals in ([], [len(last) - 1]), (jti, [e.state for e in last])


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    config = site_config(tmp_path / "state", requests_per_hour=1_000_000)
    with asyncio.Runner() as runner:
        context = running_service(config)
        site = runner.run(context.__aenter__())
        try:
            yield Harness(runner, site)
        finally:
            runner.run(context.__aexit__(None, None, None))


def run(harness: Harness, strategy: st.SearchStrategy[bytes]) -> None:
    @SETTINGS
    @given(strategy)
    def feed(payload: bytes) -> None:
        harness.feed(payload)

    feed()
    harness.check_streams()
    assert harness.payloads >= PER_STRATEGY


def test_random_bytes(harness: Harness) -> None:
    run(
        harness,
        st.one_of(
            st.binary(max_size=512),
            st.tuples(st.binary(min_size=1, max_size=64), st.integers(16000, 17000)).map(
                lambda parts: (parts[0] * (parts[1] // len(parts[0]) + 1))[: parts[1]]
            ),
            st.text(alphabet="ABCabc012-_.=", max_size=400).map(str.encode),
        ),
    )


def _as_token(parts: tuple[Any, Any, bytes]) -> bytes:
    header, claims, signature = parts
    return ".".join(
        [
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(claims).encode()),
            b64url(signature),
        ]
    ).encode()


def test_random_json(harness: Harness) -> None:
    run(
        harness,
        st.one_of(
            json_values.map(lambda value: json.dumps(value).encode()),
            st.tuples(json_values, json_values, st.binary(max_size=80)).map(_as_token),
            st.tuples(
                st.fixed_dictionaries({"alg": st.sampled_from(["EdDSA", "none", "HS256"])}),
                st.dictionaries(st.sampled_from(CLAIM_NAMES), json_values, max_size=8),
                st.binary(min_size=64, max_size=64),
            ).map(_as_token),
        ),
    )


VALID = [make_token(cmd) for cmd in COMMANDS for _ in range(3)]


@st.composite
def mutated_tokens(draw: Callable[..., Any]) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)).encode())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "swap", "dot"]))
        index = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[index] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "delete":
            del data[index : index + draw(st.integers(min_value=1, max_value=20))]
        elif kind == "insert":
            data[index:index] = draw(st.binary(min_size=1, max_size=20))
        elif kind == "truncate":
            del data[index:]
        elif kind == "swap":
            parts = bytes(data).split(b".")
            data = bytearray(b".".join(reversed(parts)))
        else:
            data[index:index] = b"."
    return bytes(data)


def test_mutated_valid_tokens(harness: Harness) -> None:
    run(harness, mutated_tokens())


@st.composite
def signed_random_claims(draw: Callable[..., Any]) -> bytes:
    now = int(time.time())
    cmd = draw(st.sampled_from([*COMMANDS, "bogus", ""]))
    claims = make_claims(cmd) if cmd else {}
    for name in draw(st.lists(st.sampled_from(CLAIM_NAMES), max_size=4)):
        choice = draw(st.integers(min_value=0, max_value=3))
        if choice == 0:
            claims.pop(name, None)
        elif choice == 1:
            claims[name] = draw(json_values)
        elif choice == 2:
            claims[name] = now + draw(st.integers(min_value=-(10**6), max_value=10**6))
        else:
            claims[name] = draw(any_text(30))
    for name, value in draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)).items():
        claims[name] = value
    header: dict[str, Any] = {"alg": "EdDSA", "kid": RTCC.kid}
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        header["kid"] = draw(any_text(20))  # unsigned: read before any signature is checked
    if draw(st.booleans()):
        header.update(
            draw(
                st.dictionaries(
                    st.sampled_from(["typ", "cty", "jku", "x5u", "zip"]), json_values, max_size=2
                )
            )
        )
    return RTCC.sign_raw(header, json.dumps(claims).encode()).encode()


def test_valid_signatures_over_random_claims(harness: Harness) -> None:
    run(harness, signed_random_claims())
