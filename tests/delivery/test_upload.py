"""The upload client against real HTTPS servers: streaming, retries, refusals, caps, cancel."""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.delivery import TokenBucket, Uploader, UploadFailed, retry_after_seconds
from agent.delivery.upload import ProgressThrottle, backoff_delay
from tests.delivery.conftest import Payload, ReceiverFactory
from tests.delivery.receivers import drop, ok, redirect, stall, status
from tests.support.broker import TestCA


def _far() -> float:
    return time.time() + 600


async def test_streams_the_file_with_length_and_headers(
    https_receiver: ReceiverFactory, uploader: Uploader, payload: Payload
) -> None:
    async with https_receiver() as receiver:
        result = await uploader.put(
            receiver.url("/put/a.mp4?X-Amz-Credential=a%2Fb&X-Sig=abc"),
            payload.path,
            content_type="video/mp4",
            headers={"x-amz-meta-case": "2026-1"},
            deadline=_far(),
        )
    [got] = receiver.received
    assert got.body == payload.data
    assert got.headers["Content-Length"] == str(payload.size)
    assert got.headers["Content-Type"] == "video/mp4"
    assert got.headers["x-amz-meta-case"] == "2026-1"
    assert "chunked" not in got.headers.get("Transfer-Encoding", "")
    assert got.query == "X-Amz-Credential=a%2Fb&X-Sig=abc"  # sent exactly as given
    assert (result.status, result.bytes, len(result.attempts)) == (200, len(got.body), 1)
    assert result.host == "127.0.0.1"


async def test_a_request_header_may_set_the_content_type(
    https_receiver: ReceiverFactory, uploader: Uploader
) -> None:
    async with https_receiver() as receiver:
        await uploader.put(
            receiver.url(),
            b"data",
            content_type="video/mp4",
            headers={"content-type": "application/octet-stream"},
            deadline=_far(),
        )
    headers = receiver.received[0].headers
    assert headers["Content-Type"] == "application/octet-stream"


async def test_500_then_a_dropped_connection_then_success(
    https_receiver: ReceiverFactory, uploader: Uploader, payload: Payload
) -> None:
    async with https_receiver([status(500), drop(256 * 1024), ok()]) as receiver:
        result = await uploader.put(
            receiver.url(), payload.path, content_type="video/mp4", deadline=_far()
        )
    assert [r.answered for r in receiver.received] == [500, None, 200]
    assert 0 < len(receiver.received[1].body) < payload.size
    assert receiver.received[2].body == payload.data
    statuses = [(a.status, a.error is not None) for a in result.attempts]
    assert statuses == [(500, False), (None, True), (200, False)]


async def test_403_is_final_without_retry(
    https_receiver: ReceiverFactory, uploader: Uploader, payload: Payload
) -> None:
    async with https_receiver([status(403)]) as receiver:
        with pytest.raises(UploadFailed) as failed:
            await uploader.put(
                receiver.url(), payload.path, content_type="video/mp4", deadline=_far()
            )
    assert len(receiver.received) == 1
    assert failed.value.status == 403
    assert "HTTP 403" in failed.value.message and "127.0.0.1" in failed.value.message
    assert "X-Sig" not in failed.value.message  # never the presigned URL


@pytest.mark.parametrize("code", [408, 429, 502, 503])
async def test_transient_statuses_are_retried(
    https_receiver: ReceiverFactory, uploader: Uploader, code: int
) -> None:
    async with https_receiver([status(code), ok()]) as receiver:
        result = await uploader.put(
            receiver.url(), b"x" * 1000, content_type="a/b", deadline=_far()
        )
    assert [a.status for a in result.attempts] == [code, 200]


@pytest.mark.parametrize("code", [400, 401, 404, 409, 411, 413])
async def test_other_4xx_are_not_retried(
    https_receiver: ReceiverFactory, uploader: Uploader, code: int
) -> None:
    async with https_receiver([status(code)]) as receiver:
        with pytest.raises(UploadFailed):
            await uploader.put(receiver.url(), b"x", content_type="a/b", deadline=_far())
    assert len(receiver.received) == 1


async def test_retry_after_seconds_is_honoured(
    https_receiver: ReceiverFactory, client_tls: ssl.SSLContext
) -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    async with (
        https_receiver([status(429, **{"Retry-After": "7"}), ok()]) as receiver,
        Uploader(allowed_hosts=["127.0.0.1"], tls=client_tls, backoff_base=30, sleep=sleep) as up,
    ):
        result = await up.put(receiver.url(), b"x" * 10, content_type="a/b", deadline=_far())
    assert [a.status for a in result.attempts] == [429, 200]
    assert slept == [7.0]  # the server's delay, not the backoff


async def test_retry_after_past_the_budget_fails_at_once(
    https_receiver: ReceiverFactory, uploader: Uploader
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    async with https_receiver([status(503, **{"Retry-After": later})]) as receiver:
        with pytest.raises(UploadFailed) as failed:
            await uploader.put(receiver.url(), b"x", content_type="a/b", deadline=_far())
    assert len(receiver.received) == 1
    assert "asked to retry in" in failed.value.message


async def test_budget_spent_gives_up(https_receiver: ReceiverFactory, uploader: Uploader) -> None:
    async with https_receiver([status(500)] * 50) as receiver:
        with pytest.raises(UploadFailed) as failed:
            await uploader.put(receiver.url(), b"x", content_type="a/b", deadline=time.time() + 1)
    assert "gave up after" in failed.value.message
    assert len(failed.value.attempts) == len(receiver.received) >= 1


async def test_host_not_allowed_is_refused_before_connecting(
    https_receiver: ReceiverFactory, client_tls: ssl.SSLContext
) -> None:
    async with (
        https_receiver() as receiver,
        Uploader(allowed_hosts=["uploads.rtcc.test"], tls=client_tls) as up,
    ):
        with pytest.raises(UploadFailed) as failed:
            await up.put(receiver.url(), b"x", content_type="a/b", deadline=_far())
    assert receiver.received == []
    assert "not in the owner's allowed hosts" in failed.value.message


async def test_redirect_to_another_host_is_refused(
    https_receiver: ReceiverFactory, uploader: Uploader
) -> None:
    async with https_receiver([redirect(307, "https://evil.example/put")]) as receiver:
        with pytest.raises(UploadFailed) as failed:
            await uploader.put(receiver.url(), b"x", content_type="a/b", deadline=_far())
    assert len(receiver.received) == 1
    assert "evil.example" in failed.value.message and "refused" in failed.value.message


async def test_redirect_that_changes_the_method_is_refused(
    https_receiver: ReceiverFactory, uploader: Uploader
) -> None:
    async with https_receiver([redirect(302, "/elsewhere")]) as receiver:
        with pytest.raises(UploadFailed):
            await uploader.put(receiver.url(), b"x", content_type="a/b", deadline=_far())
    assert len(receiver.received) == 1


async def test_same_host_307_is_a_new_attempt_with_the_whole_body(
    https_receiver: ReceiverFactory, uploader: Uploader, payload: Payload
) -> None:
    async with https_receiver([redirect(307, "/moved/clip.mp4?sig=2")]) as receiver:
        await uploader.put(receiver.url(), payload.path, content_type="video/mp4", deadline=_far())
    assert [r.path for r in receiver.received] == ["/put/clip.mp4", "/moved/clip.mp4"]
    assert receiver.objects["/moved/clip.mp4"] == payload.data


async def test_untrusted_certificate_fails_without_retry(
    https_receiver: ReceiverFactory, tmp_path: Path
) -> None:
    other_ca = TestCA(tmp_path / "other-ca")
    async with (
        https_receiver() as receiver,
        Uploader(
            allowed_hosts=["127.0.0.1"],
            tls=ssl.create_default_context(cafile=str(other_ca.cert_path)),
        ) as up,
    ):
        with pytest.raises(UploadFailed) as failed:
            await up.put(receiver.url(), b"x", content_type="a/b", deadline=_far())
    assert len(failed.value.attempts) == 1
    assert "not trusted" in failed.value.message
    assert receiver.received == []


async def test_a_stalled_server_is_abandoned_and_retried(
    https_receiver: ReceiverFactory, client_tls: ssl.SSLContext, payload: Payload
) -> None:
    async with (
        https_receiver([stall(), ok()]) as receiver,
        Uploader(
            allowed_hosts=["127.0.0.1"], tls=client_tls, stall_timeout=0.5, backoff_base=0.01
        ) as up,
    ):
        result = await up.put(receiver.url(), payload.path, content_type="a/b", deadline=_far())
    assert result.attempts[0].error is not None and "no progress" in result.attempts[0].error
    assert receiver.completed[-1].body == payload.data


async def test_cancel_aborts_the_transfer(
    https_receiver: ReceiverFactory, uploader: Uploader, payload: Payload
) -> None:
    async with https_receiver([stall()]) as receiver:
        task = asyncio.create_task(
            uploader.put(receiver.url(), payload.path, content_type="a/b", deadline=_far())
        )
        while not receiver.received:  # noqa: ASYNC110 - waiting for the server to see it
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(receiver.disconnected.wait(), 10)
    assert receiver.completed == []


async def test_concurrency_cap_is_site_wide(
    https_receiver: ReceiverFactory, client_tls: ssl.SSLContext
) -> None:
    async with (
        https_receiver() as receiver,
        Uploader(allowed_hosts=["127.0.0.1"], tls=client_tls, concurrency=2) as up,
    ):
        receiver.gate = asyncio.Event()
        puts = [
            asyncio.create_task(
                up.put(receiver.url(f"/put/{n}"), b"x" * 100, content_type="a/b", deadline=_far())
            )
            for n in range(5)
        ]
        while len(receiver.received) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # a third would have arrived by now if it were let through
        assert receiver.active == 2
        receiver.gate.set()
        await asyncio.gather(*puts)
    assert receiver.most_active == 2 and len(receiver.completed) == 5


async def test_bandwidth_cap_paces_every_chunk(
    https_receiver: ReceiverFactory, client_tls: ssl.SSLContext, payload: Payload
) -> None:
    waits: list[float] = []
    now = [0.0]  # the bucket's clock moves only when it sleeps: the pacing is exact

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(4_000_000, burst=65536, clock=lambda: now[0], sleep=sleep)
    async with (
        https_receiver() as receiver,
        Uploader(allowed_hosts=["127.0.0.1"], tls=client_tls, bandwidth=bucket) as up,
    ):
        await up.put(receiver.url(), payload.path, content_type="a/b", deadline=_far())
    size = payload.size
    assert receiver.objects["/put/clip.mp4"] == payload.data
    # The bucket asked for (about) the time the bytes beyond the burst take at the cap.
    assert sum(waits) == pytest.approx((size - 65536) / 4_000_000, rel=0.01)
    assert len(waits) >= size // 65536 - 1  # every chunk waited its turn


async def test_progress_is_reported_at_most_every_2_s_or_10_percent(
    https_receiver: ReceiverFactory, uploader: Uploader, payload: Payload
) -> None:
    reports: list[tuple[int, int]] = []

    async def progress(sent: int, total: int) -> None:
        reports.append((sent, total))

    async with https_receiver() as receiver:
        await uploader.put(
            receiver.url(), payload.path, content_type="a/b", deadline=_far(), progress=progress
        )
    size = payload.size
    assert reports and all(total == size and 0 < sent < size for sent, total in reports)
    steps = [b - a for (a, _), (b, _) in zip([(0, 0), *reports], reports, strict=False)]
    assert all(step >= size // 10 for step in steps)  # a fast upload: 10 % steps only
    assert len(reports) <= 10


async def test_progress_throttle_by_time() -> None:
    now = [0.0]
    reports: list[int] = []

    async def report(sent: int, _total: int) -> None:
        reports.append(sent)

    throttle = ProgressThrottle(1000, report, clock=lambda: now[0])
    for sent in range(1, 60):
        now[0] += 0.5
        await throttle.update(sent)
    assert reports == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56]


def test_backoff_is_full_jitter_and_capped() -> None:
    assert backoff_delay(1, base=1, cap=60, rng=lambda: 0.999) < 1
    assert backoff_delay(4, base=1, cap=60, rng=lambda: 0.5) == 4
    assert backoff_delay(40, base=1, cap=60, rng=lambda: 1.0) == 60
    assert backoff_delay(3, base=1, cap=60, rng=lambda: 0.0) == 0


def test_retry_after_forms() -> None:
    now = 1_000_000.0
    assert retry_after_seconds("120", now=now) == 120
    assert retry_after_seconds(" 0 ", now=now) == 0
    date = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert retry_after_seconds(date, now=now) == pytest.approx(30)
    past = format_datetime(datetime.fromtimestamp(now - 30, UTC), usegmt=True)
    assert retry_after_seconds(past, now=now) == 0
    for junk in (None, "", "-5", "1.5", "soon", "9" * 100, "Mon, 99 Foo 2026 99:99:99 GMT"):
        assert retry_after_seconds(junk, now=now) is None


@given(st.text(max_size=80))
def test_retry_after_never_raises(text: str) -> None:
    value = retry_after_seconds(text, now=time.time())
    assert value is None or value >= 0
