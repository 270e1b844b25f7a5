"""The one client TLS builder, through real handshakes with a local TLS server: whom it trusts,
that host names and certificates are always checked, the client certificate, and what it says
about unusable files."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.tls import TlsFileError, client_context
from tests.support.broker import TestCA


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "ca")


class Server:
    """A TLS server on 127.0.0.1 that answers one handshake per connection; it remembers the
    client certificate's subject when one was presented."""

    def __init__(self, ca: TestCA, *, require_client: bool = False) -> None:
        cert, key = ca.issue("localhost", server=True)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        if require_client:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(cafile=str(ca.cert_path))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.peers: list[object] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    self.peers.append(tls.getpeercert())
                    tls.sendall(b"ok")
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(ca: TestCA) -> Iterator[Server]:
    running = Server(ca)
    yield running
    running.close()


def handshake(context: ssl.SSLContext, port: int, host: str = "localhost") -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.recv(2)


def test_a_private_ca_alone_or_on_top_of_the_system(ca: TestCA, server: Server) -> None:
    assert (
        handshake(client_context(ca_files=[ca.cert_path], system_cas=False), server.port) == b"ok"
    )
    assert handshake(client_context(ca_files=[ca.cert_path]), server.port) == b"ok"
    context = client_context(ca_files=[ca.cert_path], system_cas=False)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_untrusted_and_wrong_names_are_refused(tmp_path: Path, ca: TestCA, server: Server) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(client_context(), server.port)  # the system does not know the test CA
    other = TestCA(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(client_context(ca_files=[other.cert_path], system_cas=False), server.port)
    with pytest.raises(ssl.SSLCertVerificationError, match=r"mismatch|match"):
        handshake(
            client_context(ca_files=[ca.cert_path], system_cas=False),
            server.port,
            host="rtcc.example.gov",
        )


def test_the_client_certificate_is_presented(ca: TestCA) -> None:
    server = Server(ca, require_client=True)
    try:
        cert, key = ca.issue("site-0001")
        context = client_context(
            ca_files=[ca.cert_path], system_cas=False, cert_file=cert, key_file=key
        )
        assert handshake(context, server.port) == b"ok"
        subject = dict(item[0] for item in server.peers[-1]["subject"])  # type: ignore[index]
        assert subject["commonName"] == "site-0001"
    finally:
        server.close()


def test_unusable_files_are_named(tmp_path: Path, ca: TestCA) -> None:
    missing = tmp_path / "absent.pem"
    with pytest.raises(TlsFileError) as caught:
        client_context(ca_files=[missing])
    assert caught.value.missing and caught.value.path == missing
    with pytest.raises(TlsFileError) as caught:
        client_context(ca_files=[missing], system_cas=False)
    assert caught.value.missing and caught.value.path == missing
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(TlsFileError) as caught:
        client_context(ca_files=[garbage])
    assert not caught.value.missing and caught.value.path == garbage
    cert, _ = ca.issue("site-0001")
    with pytest.raises(TlsFileError, match="both its certificate and key"):
        client_context(cert_file=cert)
    with pytest.raises(TlsFileError, match="no CA"):
        client_context(system_cas=False)
    with pytest.raises(TlsFileError) as caught:
        client_context(cert_file=cert, key_file=tmp_path / "absent.key")
    assert caught.value.path == cert and caught.value.missing
