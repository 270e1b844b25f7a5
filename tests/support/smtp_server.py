"""A small real SMTP server for tests (asyncio + ssl): EHLO, STARTTLS, AUTH PLAIN/LOGIN only
after STARTTLS, MAIL/RCPT/DATA, QUIT. What a mail provider's submission port (587) does, as
far as a client can tell; messages are kept as parsed `EmailMessage`s.

`refuse_first=N` answers the first N connections with `421` (a server that is busy or
restarting), to exercise the client's retries."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None
    tls: bool


@dataclass
class SmtpServer:
    cert: Path
    key: Path
    username: str = "owner@example.org"
    password: str = "mail-secret"
    refuse_first: int = 0
    messages: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> SmtpServer:
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(self.cert, self.key)
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.connections <= self.refuse_first:
                writer.write(b"421 4.3.2 busy, try again later\r\n")
                await writer.drain()
                return
            await self._dialogue(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        tls = False
        login: str | None = None
        sender = ""
        recipients: list[str] = []
        await say("220 mail.test ESMTP ready")
        while True:
            raw = await reader.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                extensions = ["AUTH PLAIN LOGIN"] if tls else ["STARTTLS"]
                lines = ["mail.test", *extensions]
                for number, text in enumerate(lines):
                    await say(f"250{'-' if number < len(lines) - 1 else ' '}{text}")
            elif verb == "STARTTLS" and not tls:
                await say("220 2.0.0 go ahead")
                await writer.start_tls(self._tls)
                tls = True
            elif verb == "AUTH" and tls:
                parts = line.split(" ")
                if parts[1].upper() == "PLAIN":
                    blob = parts[2] if len(parts) > 2 else None
                    if blob is None:
                        await say("334 ")
                        blob = (await reader.readline()).decode().strip()
                    _, user, secret = base64.b64decode(blob).decode().split("\0")
                else:
                    await say("334 VXNlcm5hbWU6")
                    user = base64.b64decode((await reader.readline()).strip()).decode()
                    await say("334 UGFzc3dvcmQ6")
                    secret = base64.b64decode((await reader.readline()).strip()).decode()
                if (user, secret) == (self.username, self.password):
                    login = user
                    await say("235 2.7.0 authenticated")
                else:
                    await say("535 5.7.8 bad credentials")
            elif verb in ("AUTH", "MAIL") and not tls:
                await say("530 5.7.0 must issue STARTTLS first")
            elif verb == "MAIL":
                if login is None:
                    await say("530 5.7.0 authentication required")
                    continue
                sender = line.split(":", 1)[1].strip().strip("<>").split(">")[0]
                recipients = []
                await say("250 2.1.0 ok")
            elif verb == "RCPT":
                recipients.append(line.split(":", 1)[1].strip().strip("<>"))
                await say("250 2.1.5 ok")
            elif verb == "DATA":
                await say("354 end with <CRLF>.<CRLF>")
                data = bytearray()
                while True:
                    chunk = await reader.readline()
                    if chunk in (b".\r\n", b""):
                        break
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                message = BytesParser(policy=policy.default).parsebytes(bytes(data))
                assert isinstance(message, EmailMessage)
                await self.messages.put(Received(sender, recipients, message, login, tls))
                await say("250 2.0.0 queued")
            elif verb in ("RSET", "NOOP"):
                await say("250 ok")
            elif verb == "QUIT":
                await say("221 bye")
                return
            else:
                await say("502 5.5.2 not implemented")
