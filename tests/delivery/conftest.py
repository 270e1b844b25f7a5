"""Fixtures for delivery: a test CA and HTTPS receivers, an uploader trusting that CA."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.delivery import Uploader, outbound_tls_context
from tests.delivery.receivers import ScriptedReceiver, Step, server_tls, serving
from tests.support.broker import TestCA


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("delivery-ca"))


@pytest.fixture(scope="session")
def receiver_tls(test_ca: TestCA) -> ssl.SSLContext:
    return server_tls(test_ca)


@pytest.fixture
def client_tls(test_ca: TestCA) -> ssl.SSLContext:
    return outbound_tls_context(test_ca.cert_path)


ReceiverFactory = Callable[..., AbstractAsyncContextManager[ScriptedReceiver]]


@pytest.fixture
def https_receiver(receiver_tls: ssl.SSLContext) -> ReceiverFactory:
    """`async with https_receiver([status(500), drop(), ok()]) as receiver: ...`"""

    def start(script: list[Step] | None = None) -> AbstractAsyncContextManager[ScriptedReceiver]:
        return serving(ScriptedReceiver(script), tls=receiver_tls)

    return start


@pytest.fixture
async def uploader(client_tls: ssl.SSLContext) -> AsyncIterator[Uploader]:
    async with Uploader(
        allowed_hosts=["127.0.0.1"], tls=client_tls, backoff_base=0.05, stall_timeout=5.0
    ) as up:
        yield up


@dataclass(frozen=True)
class Payload:
    path: Path
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@pytest.fixture
def payload(tmp_path: Path) -> Payload:
    """A 3 MB file of varied bytes."""
    path = tmp_path / "payload.bin"
    block = bytes(range(256)) * 4096
    data = b"".join(block[i:] + block[:i] for i in range(3))
    path.write_bytes(data)
    return Payload(path, data)
