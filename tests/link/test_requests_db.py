"""The request book."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.link.requests_db import RequestBook, StaleRequest
from agent.wire import ClipRequest, EventState, RejectCode, parse_request_claims
from tests.support.link_service import FakeClock
from tests.support.rtcc import make_claims


def clip_request() -> ClipRequest:
    request = parse_request_claims(make_claims("clip"))
    assert isinstance(request, ClipRequest)
    return request


@pytest.fixture
def book(tmp_path: Path) -> RequestBook:
    return RequestBook(tmp_path / "requests.db")


def test_seq_counts_up_and_stops_at_a_final_state(book: RequestBook) -> None:
    request = clip_request()
    record = book.add(
        jti=request.jti, issuer=request.iss, state=EventState.ACCEPTED, request=request
    )
    assert record.seq == 1 and not record.final
    assert book.advance(request.jti, EventState.PROGRESS).seq == 2
    done = book.advance(request.jti, EventState.COMPLETED)
    assert done.seq == 3 and done.final
    with pytest.raises(StaleRequest):
        book.advance(request.jti, EventState.FAILED, code=RejectCode.INTERNAL)
    again = book.get(request.jti)
    assert again is not None and again.seq == 3


def test_request_round_trips(book: RequestBook) -> None:
    request = clip_request()
    book.add(
        jti=request.jti, issuer=request.iss, state=EventState.PENDING_APPROVAL, request=request
    )
    record = book.get(request.jti)
    assert record is not None and record.request() == request
    assert record.window() == (request.start, request.end)
    assert [r.jti for r in book.pending()] == [request.jti]


def test_summary_never_shows_upload_urls(book: RequestBook) -> None:
    request = clip_request()
    record = book.add(
        jti=request.jti, issuer=request.iss, state=EventState.ACCEPTED, request=request
    )
    text = str(record.summary())
    assert "X-Sig" not in text and "uploads.rtcc.test" not in text
    assert record.summary()["case"] == request.case


def test_rate_count_skips_uncounted(book: RequestBook, tmp_path: Path) -> None:
    clock = FakeClock()
    book = RequestBook(tmp_path / "other.db", clock=clock)
    for index in range(3):
        book.add(jti=f"a{index}", issuer="rtcc", state=EventState.ACCEPTED)
    book.add(jti="limited", issuer="rtcc", state=EventState.REJECTED, counted=False)
    book.add(jti="b", issuer="other", state=EventState.ACCEPTED)
    assert book.count_since("rtcc", clock() - 60) == 3
    clock.offset += 3600
    assert book.count_since("rtcc", clock() - 60) == 0


def test_prefix_match_treats_wildcards_literally(book: RequestBook) -> None:
    book.add(jti="abc_1", issuer="r", state=EventState.ACCEPTED)
    book.add(jti="abcx1", issuer="r", state=EventState.ACCEPTED)
    assert [r.jti for r in book.matching("abc_")] == ["abc_1"]
    assert book.matching("%") == []
    assert len(book.matching("abc")) == 2


def test_the_database_is_private(tmp_path: Path) -> None:
    RequestBook(tmp_path / "requests.db").close()
    assert stat.S_IMODE((tmp_path / "requests.db").stat().st_mode) == 0o600
