"""One ONVIF camera, through onvif-zeep-async, with every quirk handled in this one place.

    async with OnvifCamera("192.168.1.64", 80, username="admin", password="…") as camera:
        camera.info, camera.auth, camera.clock, camera.services, camera.quirks
        profiles = await camera.profiles()
        uri = await camera.stream_uri(select_profile(profiles, "main").token)

What `connect()` does, in order:

1. Unauthenticated GetSystemDateAndTime (our own SOAP, `agent.onvif.soap`): proves a device
   service answers, and measures the camera's clock offset at the middle of the round trip.
2. Authentication, trying WS-Security PasswordDigest, then PasswordText, then HTTP Digest; a
   camera that answers an anonymous request with an HTTP Digest challenge goes from
   PasswordDigest straight to HTTP Digest, since sending it PasswordText would put the password
   on the wire in clear for nothing. PasswordDigest's `Created` is checked against the camera's
   clock, so when the offset is 5 s or more it is compensated with the library's `dt_diff`
   (what its `adjust_time` option sets, but measured by us: `adjust_time` ignores the round
   trip and repeats the request on every connect). A camera that tells its time only to a
   logged-in client is asked again once logged in; if its clock is far off and only HTTP Digest
   (which carries no timestamp) got in, PasswordDigest is tried again with the correction.
3. GetServices, or GetCapabilities when the camera does not implement it; every service address
   is rewritten to the host (and, for services on the device service's port, the port) we
   reached: `0.0.0.0`, a duplicated port or a LAN address seen through NAT are all fixed here.
   A camera that answers neither keeps what it did say (`info`), and its media operations are
   asked at the device service address.

Whatever fails later, what the camera already said stays on the object (`info`, `clock`,
`quirks`), so a report can still judge the firmware of a camera whose media service is broken.

Stream URIs are unescaped (`&amp;`), stripped of credentials and pointed at the host we reached.
Every call runs under our own timeout (the library's default is 90 s), and every failure is an
`agent.onvif.errors.OnvifError` with a plain-words message.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import aiohttp

from agent.log import ensure_configured, get_logger
from agent.neterrors import describe_network_error
from agent.onvif.addresses import (
    advertised_port,
    fix_service_url,
    fix_stream_uri,
)
from agent.onvif.errors import (
    AuthFailed,
    MalformedAnswer,
    NoAnswer,
    NotOnvif,
    OnvifError,
    OnvifFault,
    Unreachable,
    quoted,
)
from agent.onvif.media import (
    Channel,
    MediaProfile,
    VideoSource,
    choose_profile,
    group_channels,
)
from agent.onvif.soap import (
    AUTH_SUBCODES,
    DEVICE_SERVICE_PATH,
    ClockReading,
    clock_reading,
    describe_connect_error,
    http_auth_challenge,
    system_date_and_time,
)
from agent.quirks import QuirkId, describe

log = get_logger(__name__)

AuthMethod = Literal["password_digest", "password_text", "http_digest"]
DEFAULT_TIMEOUT = 5.0
# Offsets at least this large are compensated in PasswordDigest's Created (the rule;
# cameras typically accept ±5 min, but some are stricter).
COMPENSATE_OFFSET = 5.0
# A 64-channel recorder has two or three profiles per channel.
MAX_PROFILES = 256

DEVICE_NS = "http://www.onvif.org/ver10/device/wsdl"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
SERVICE_NAMES = {
    DEVICE_NS: "device",
    MEDIA_NS: "media",
    "http://www.onvif.org/ver20/media/wsdl": "media2",
    "http://www.onvif.org/ver10/events/wsdl": "events",
    "http://www.onvif.org/ver20/imaging/wsdl": "imaging",
    "http://www.onvif.org/ver20/ptz/wsdl": "ptz",
    "http://www.onvif.org/ver10/deviceIO/wsdl": "deviceio",
}
# GetCapabilities names its categories instead of namespaces.
CAPABILITY_NAMESPACES = {"Device": DEVICE_NS, "Media": MEDIA_NS}

_T = TypeVar("_T")
_onvif: ModuleType | None = None
_WSDL_LOADED: set[str] = set()
_WSDL_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _wsdl_lock(name: str) -> asyncio.Lock:
    locks = _WSDL_LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(name, asyncio.Lock())


def _library() -> ModuleType:
    """onvif-zeep-async, imported once logging is set up (it calls logging.basicConfig)."""
    global _onvif
    if _onvif is None:
        ensure_configured()
        import onvif

        _onvif = onvif
    return _onvif


@dataclass(frozen=True)
class DeviceInfo:
    manufacturer: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    hardware_id: str | None


@dataclass(frozen=True)
class QuirkSeen:
    id: str
    detail: str
    workaround: str | None  # None: detected, not worked around


@dataclass
class _Client:
    camera: Any  # onvif.ONVIFCamera
    method: AuthMethod
    digest_sessions: list[aiohttp.ClientSession] = field(default_factory=list)


def _text(value: object, limit: int = 200) -> str | None:
    if value is None:
        return None
    text = quoted(value, limit).strip()
    return text or None


def _number(value: object) -> float | None:
    try:
        number = float(str(value))
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) < 1e9 else None  # NaN, absurd values


def _int(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _get(obj: object, *names: str) -> object:
    """`obj.a.b.c`, or None where anything along the way is missing."""
    for name in names:
        if obj is None:
            return None
        try:
            obj = getattr(obj, name, None)
        except Exception:  # noqa: BLE001 - zeep objects built from hostile XML may raise anything
            return None
    return obj


def _utc_datetime(value: object) -> datetime | None:
    """A tt:DateTime (Date and Time parts) as the library parsed it, or None if unusable."""
    date, clock = _get(value, "Date"), _get(value, "Time")
    parts = [
        _int(_get(date, "Year")),
        _int(_get(date, "Month")),
        _int(_get(date, "Day")),
        _int(_get(clock, "Hour")),
        _int(_get(clock, "Minute")),
        _int(_get(clock, "Second")),
    ]
    if any(part is None for part in parts):
        return None
    year, month, day, hour, minute, second = (int(p or 0) for p in parts)
    try:
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _subcode_names(fault: Any) -> tuple[str, ...]:
    names: list[str] = []
    for code in list(getattr(fault, "subcodes", None) or [])[:8]:
        local = getattr(code, "localname", None) or str(code).rpartition("}")[2]
        names.append(quoted(str(local).rpartition(":")[2], 64))
    return tuple(names)


def _translate(operation: str, exc: Exception, timeout: float) -> OnvifError:
    """The OnvifError for anything onvif-zeep-async, zeep, aiohttp or lxml raised."""
    onvif = _library()
    import zeep.exceptions

    cause: BaseException = exc
    # onvif's safe_func wraps synchronous failures; look at what it wrapped.
    while isinstance(cause, onvif.ONVIFError) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, OnvifError):
        return cause
    if isinstance(cause, TimeoutError):
        return NoAnswer(f"{operation}: no answer within {timeout:g} s")
    if isinstance(cause, zeep.exceptions.Fault):
        subcodes = _subcode_names(cause)
        reason = str(cause.message or "")
        if AUTH_SUBCODES & set(subcodes) or "not authorized" in reason.lower():
            return AuthFailed(f"{operation}: the camera refused the credentials")
        return OnvifFault(operation, reason, subcodes=subcodes)
    if isinstance(cause, zeep.exceptions.TransportError):
        status = getattr(cause, "status_code", 0) or 0
        if status in (401, 403):
            return AuthFailed(f"{operation}: HTTP {status}, the camera refused the credentials")
        # It answered GetSystemDateAndTime as ONVIF before, so this is a broken answer.
        return MalformedAnswer(f"{operation}: HTTP {status} without a usable SOAP answer")
    if isinstance(cause, aiohttp.ClientConnectorError):
        return Unreachable(f"{operation}: {describe_connect_error(cause)}")
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return NoAnswer(f"{operation}: the camera closed the connection before it answered")
    if isinstance(cause, aiohttp.ClientPayloadError):
        return NoAnswer(f"{operation}: the connection broke off in the middle of the answer")
    if isinstance(cause, aiohttp.ClientError | OSError):
        what = describe_network_error(cause) or "the connection failed"
        return NoAnswer(f"{operation}: {what}")
    return MalformedAnswer(
        f"{operation}: could not understand the camera's answer ({type(cause).__name__}: "
        f"{quoted(cause, 120)})"
    )


class OnvifCamera:
    """A connected ONVIF camera (see the module docstring). Close it (or use `async with`)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str,
        password: str,
        timeout: float = DEFAULT_TIMEOUT,
        path: str = DEVICE_SERVICE_PATH,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.timeout = timeout
        self.device_url = f"http://{host if ':' not in host else f'[{host}]'}:{port}{path}"
        self.clock: ClockReading | None = None
        self.clock_error: str | None = None  # why the camera's time is unknown
        self.clock_needs_auth = False  # it refused to tell its time without credentials
        self.info: DeviceInfo | None = None
        self.auth: AuthMethod | None = None
        self.compensated = False
        self.services: dict[str, str] = {}
        self.advertised_services: dict[str, str] = {}
        self.media_assumed = False  # no media service named: the device service was tried
        self._quirks: dict[QuirkId, QuirkSeen] = {}
        self._session: aiohttp.ClientSession | None = None
        self._client: _Client | None = None

    @classmethod
    def from_url(
        cls, url: str, *, username: str, password: str, timeout: float = DEFAULT_TIMEOUT
    ) -> OnvifCamera:
        """From a device service URL, `http://host[:port]/onvif/device_service`."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise NotOnvif(f"not an http:// device service URL: {quoted(url, 80)}")
        try:
            port = parts.port or 80
        except ValueError:
            raise NotOnvif(f"bad port in {quoted(url, 80)}") from None
        return cls(
            parts.hostname,
            port,
            username=username,
            password=password,
            timeout=timeout,
            path=parts.path or DEVICE_SERVICE_PATH,
        )

    @property
    def quirks(self) -> list[QuirkSeen]:
        return list(self._quirks.values())

    def note_quirk(
        self, quirk_id: QuirkId, *, worked_around: bool = True, why: str | None = None
    ) -> None:
        if quirk_id not in self._quirks:
            info = describe(quirk_id, worked_around=worked_around, why=why)
            self._quirks[quirk_id] = QuirkSeen(quirk_id, info.detail, info.workaround)

    async def __aenter__(self) -> OnvifCamera:
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._client is not None:
            await self._close_client(self._client)
            self._client = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- connecting ---------------------------------------------------------------------------

    async def connect(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        try:
            self.clock = await system_date_and_time(
                self._session, self.device_url, within=self.timeout
            )
        except AuthFailed as exc:
            # Some cameras want credentials even for the clock (against ONVIF Core §5.9.4.3):
            # asked again once logged in.
            self.clock_needs_auth = True
            self.clock_error = f"the camera tells its time only with credentials ({exc})"
        except OnvifFault as exc:
            self.clock_error = str(exc)
        challenge = await http_auth_challenge(self._session, self.device_url, within=self.timeout)
        offset = self.clock.offset if self.clock is not None else None
        dt_diff = None
        if offset is not None and abs(offset) >= COMPENSATE_OFFSET:
            dt_diff = timedelta(seconds=offset)
            self.compensated = True
        methods: list[AuthMethod] = ["password_digest", "password_text", "http_digest"]
        if self.clock is None:
            # PasswordDigest may fail only on an unknown clock: HTTP Digest (no timestamp)
            # before PasswordText, which would send the password in clear.
            methods = ["password_digest", "http_digest", "password_text"]
        if challenge == "digest":
            methods.remove("password_text")
        try:
            self.info = await self._authenticate(methods, dt_diff)
        except AuthFailed as exc:
            if self.clock_needs_auth:
                self.clock_error = (
                    "the camera tells its time only to a logged-in client, and refused the "
                    "credentials"
                )
                raise AuthFailed(
                    f"{exc}. It also keeps its clock to logged-in clients, so a camera clock "
                    "far off (WS-Security accepts about ±5 min) cannot be ruled out: check the "
                    "time in the camera's web page"
                ) from None
            raise
        if self.clock is None and self.clock_needs_auth:
            await self._clock_with_credentials()
        if self.auth == "password_text":
            self.note_quirk(QuirkId.PASSWORD_TEXT_ONLY)
        elif self.auth == "http_digest":
            self.note_quirk(QuirkId.HTTP_DIGEST_AUTH)
        await self._load_services()

    async def _authenticate(
        self, methods: list[AuthMethod], dt_diff: timedelta | None
    ) -> DeviceInfo:
        for method in methods:
            client = self._new_client(method, dt_diff)
            try:
                info = await self._device_information(client)
            except AuthFailed:
                await self._close_client(client)
                log.debug("onvif_auth_refused", host=self.host, method=method)
                continue
            except BaseException:
                await self._close_client(client)
                raise
            if self._client is not None:
                await self._close_client(self._client)
            self._client = client
            self.auth = method
            return info
        tried = {
            "password_digest": "WS-Security PasswordDigest",
            "password_text": "PasswordText",
            "http_digest": "HTTP Digest",
        }
        raise AuthFailed(
            "the camera refused the username and password (tried "
            + ", ".join(tried[m] for m in methods)
            + ")"
        )

    async def _clock_with_credentials(self) -> None:
        """GetSystemDateAndTime as a logged-in client; then, when the clock is far off, the
        WS-Security timestamps are corrected by it from here on (and WS-Security is tried again
        if only HTTP Digest, which has no timestamp, got in)."""
        client = self._require_client()
        started = time.time()
        try:
            answer = await self._invoke(client, "devicemgmt", "GetSystemDateAndTime", None)
        except OnvifError as exc:
            self.clock_error = f"the camera would not tell its time even with credentials ({exc})"
            return
        finished = time.time()
        utc = _utc_datetime(_get(answer, "UTCDateTime"))
        kind = _text(_get(answer, "DateTimeType"), 16)
        self.clock = clock_reading(
            utc, None if kind is None else kind == "NTP", started=started, finished=finished
        )
        self.clock_error = None if utc is not None else "the camera did not report its UTC time"
        self.note_quirk(QuirkId.CLOCK_NEEDS_AUTH)
        offset = self.clock.offset
        if offset is None or abs(offset) < COMPENSATE_OFFSET:
            return
        # PasswordDigest may have been refused only for its timestamp: try it again corrected
        # (and keep it, rather than PasswordText in clear or HTTP Digest, if it works now).
        try:
            await self._authenticate(["password_digest"], timedelta(seconds=offset))
        except AuthFailed:
            log.debug("onvif_ws_security_still_refused", host=self.host)
            return
        self.compensated = True

    def _new_client(self, method: AuthMethod, dt_diff: timedelta | None) -> _Client:
        onvif = _library()
        # The library's constructor deletes the proxy settings from our environment.
        saved = {k: os.environ[k] for k in ("http_proxy", "https_proxy") if k in os.environ}
        try:
            camera = onvif.ONVIFCamera(
                self.host,
                self.port,
                self.username,
                self._password,
                encrypt=method != "password_text",
                no_cache=True,
            )
        finally:
            os.environ.update(saved)
        camera.dt_diff = dt_diff
        return _Client(camera, method)

    @staticmethod
    async def _close_client(client: _Client) -> None:
        try:
            await client.camera.close()
        finally:
            for session in client.digest_sessions:
                await session.close()

    async def _service(self, client: _Client, name: str) -> Any:
        """A library service object; HTTP Digest sessions are plugged in when that is the way."""
        try:
            if name in _WSDL_LOADED:
                service = await client.camera.create_onvif_service(name)
            else:
                # The library caches each parsed WSDL, but cameras checked at once would all
                # parse it in parallel first (~0.15 s of CPU each): let the first one do it.
                async with _wsdl_lock(name):
                    service = await client.camera.create_onvif_service(name)
                    _WSDL_LOADED.add(name)
        except Exception as exc:  # noqa: BLE001 - translated into a clear OnvifError
            raise _translate(f"open the {name} service", exc, self.timeout) from None
        if client.method == "http_digest" and not getattr(service, "_rtcc_digest", False):
            # The library has no HTTP Digest for SOAP: give the service's zeep transport an
            # aiohttp session whose middleware answers Digest challenges.
            session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None),
                middlewares=(aiohttp.DigestAuthMiddleware(self.username, self._password),),
            )
            client.digest_sessions.append(session)
            service.transport.session = session
            service._rtcc_digest = True
        return service

    async def _call(self, operation: str, call: Callable[[], Awaitable[_T]]) -> _T:
        limit = self.timeout
        try:
            async with asyncio.timeout(limit):
                return await call()
        except Exception as exc:  # noqa: BLE001 - translated into a clear OnvifError
            raise _translate(operation, exc, limit) from None

    async def _invoke(
        self, client: _Client, service_name: str, operation: str, params: dict[str, Any] | None
    ) -> Any:
        service = await self._service(client, service_name)
        # With HTTP Digest the WS-Security header is left out (the library's authless_ calls).
        name = f"authless_{operation}" if client.method == "http_digest" else operation
        return await self._call(operation, lambda: getattr(service, name)(params))

    def _require_client(self) -> _Client:
        if self._client is None:
            raise RuntimeError("connect() first")
        return self._client

    async def _device_information(self, client: _Client) -> DeviceInfo:
        answer = await self._invoke(client, "devicemgmt", "GetDeviceInformation", None)
        return DeviceInfo(
            manufacturer=_text(_get(answer, "Manufacturer"), 100),
            model=_text(_get(answer, "Model"), 100),
            firmware=_text(_get(answer, "FirmwareVersion"), 120),
            serial=_text(_get(answer, "SerialNumber"), 100),
            hardware_id=_text(_get(answer, "HardwareId"), 100),
        )

    async def _load_services(self) -> None:
        client = self._require_client()
        advertised: dict[str, str] = {}
        try:
            answer = await self._invoke(
                client, "devicemgmt", "GetServices", {"IncludeCapability": False}
            )
            for entry in list(answer or [])[:64]:
                namespace, xaddr = _get(entry, "Namespace"), _get(entry, "XAddr")
                if isinstance(namespace, str) and isinstance(xaddr, str):
                    advertised.setdefault(namespace.strip(), xaddr.strip())
        except (OnvifFault, MalformedAnswer) as exc:
            log.debug("onvif_get_services_failed", host=self.host, error=str(exc))
            self.note_quirk(QuirkId.NO_GET_SERVICES)
            try:
                advertised = await self._capabilities(client)
            except (OnvifFault, MalformedAnswer) as caps_exc:
                # The camera said who it is and let us in: keep that, and ask its device
                # service for the media operations (many firmwares answer every operation on
                # every path).
                log.debug("onvif_get_capabilities_failed", host=self.host, error=str(caps_exc))
                self.note_quirk(QuirkId.NO_GET_CAPABILITIES)
                self.media_assumed = True
                advertised = {DEVICE_NS: self.device_url, MEDIA_NS: self.device_url}
        self.advertised_services = {
            SERVICE_NAMES[ns]: url for ns, url in advertised.items() if ns in SERVICE_NAMES
        }
        device_port = advertised_port(advertised.get(DEVICE_NS, ""))
        for namespace, url in advertised.items():
            name = SERVICE_NAMES.get(namespace)
            if name is None:
                continue
            try:
                fixed = fix_service_url(
                    url, reached_host=self.host, reached_port=self.port, device_port=device_port
                )
            except MalformedAnswer as exc:
                log.debug("onvif_service_unusable", host=self.host, service=name, error=str(exc))
                continue
            for quirk in fixed.quirks:
                self.note_quirk(quirk)
            self.services[name] = fixed.url
            client.camera.xaddrs[namespace] = fixed.url

    async def _capabilities(self, client: _Client) -> dict[str, str]:
        answer = await self._invoke(client, "devicemgmt", "GetCapabilities", {"Category": "All"})
        found: dict[str, str] = {}
        for category, namespace in CAPABILITY_NAMESPACES.items():
            xaddr = _get(answer, category, "XAddr")
            if isinstance(xaddr, str) and xaddr.strip():
                found[namespace] = xaddr.strip()
        if not found:
            raise MalformedAnswer("GetCapabilities: the answer names no service address")
        return found

    # -- media ----------------------------------------------------------------------------------

    def _media(self) -> _Client:
        client = self._require_client()
        if "media" not in self.services:
            raise NotOnvif("the camera offers no ONVIF media service (Profile S streaming)")
        return client

    async def profiles(self) -> list[MediaProfile]:
        client = self._media()
        try:
            answer = await self._invoke(client, "media", "GetProfiles", None)
        except OnvifError as exc:
            if not self.media_assumed:
                raise
            raise NotOnvif(
                "the camera names no media service (it answers neither GetServices nor "
                f"GetCapabilities) and its device service does not answer GetProfiles ({exc})"
            ) from None
        profiles: list[MediaProfile] = []
        for item in list(answer or [])[:MAX_PROFILES]:
            token = _text(_get(item, "token"), 64)
            if token is None:
                continue
            encoder = _get(item, "VideoEncoderConfiguration")
            profiles.append(
                MediaProfile(
                    token=token,
                    name=_text(_get(item, "Name"), 64),
                    encoding=_text(_get(encoder, "Encoding"), 16),
                    width=_int(_get(encoder, "Resolution", "Width")),
                    height=_int(_get(encoder, "Resolution", "Height")),
                    fps_limit=_number(_get(encoder, "RateControl", "FrameRateLimit")),
                    bitrate_kbps=_int(_get(encoder, "RateControl", "BitrateLimit")),
                    gov_length=_int(_get(encoder, "H264", "GovLength")),
                    source_token=_text(_get(item, "VideoSourceConfiguration", "SourceToken"), 64),
                )
            )
        if not profiles:
            raise MalformedAnswer("GetProfiles: the camera lists no usable media profile")
        return profiles

    async def video_sources(self) -> list[VideoSource]:
        """GetVideoSources ([] when the camera does not answer it: the profiles still name
        their sources)."""
        client = self._media()
        try:
            answer = await self._invoke(client, "media", "GetVideoSources", None)
        except (OnvifFault, MalformedAnswer) as exc:
            log.debug("onvif_video_sources_failed", host=self.host, error=str(exc))
            return []
        sources: list[VideoSource] = []
        for item in list(answer or [])[:MAX_PROFILES]:
            token = _text(_get(item, "token"), 64)
            if token is not None and token not in [s.token for s in sources]:
                sources.append(
                    VideoSource(
                        token=token,
                        width=_int(_get(item, "Resolution", "Width")),
                        height=_int(_get(item, "Resolution", "Height")),
                        fps=_number(_get(item, "Framerate")),
                    )
                )
        return sources

    async def channels(self) -> list[Channel]:
        """The device's channels (one for a camera, one per video source for a recorder)."""
        profiles = await self.profiles()
        return group_channels(await self.video_sources(), profiles)

    async def stream_uri(self, token: str) -> str:
        """The RTSP URI of profile `token`, fixed (no credentials, our host); OnvifFault when
        the camera refuses (the caller may then try the firmware profile's paths)."""
        client = self._media()
        params = {
            "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
            "ProfileToken": token,
        }
        answer = await self._invoke(client, "media", "GetStreamUri", params)
        uri = _get(answer, "Uri")
        if not isinstance(uri, str) or not uri.strip():
            raise MalformedAnswer("GetStreamUri: the answer has no URI")
        fixed = fix_stream_uri(uri, reached_host=self.host)
        for quirk in fixed.quirks:
            self.note_quirk(quirk)
        return fixed.url

    async def snapshot_uri(self, token: str) -> str | None:
        """The ONVIF snapshot URL, or None when the camera does not offer one."""
        client = self._media()
        try:
            answer = await self._invoke(client, "media", "GetSnapshotUri", {"ProfileToken": token})
        except OnvifFault as exc:
            if exc.not_supported:
                self.note_quirk(QuirkId.NO_SNAPSHOT)
                return None
            raise
        uri = _get(answer, "Uri")
        if not isinstance(uri, str) or not uri.strip():
            self.note_quirk(QuirkId.NO_SNAPSHOT)
            return None
        device_port = advertised_port(self.advertised_services.get("device", ""))
        try:
            fixed = fix_service_url(
                uri.strip(), reached_host=self.host, reached_port=self.port, device_port=device_port
            )
        except MalformedAnswer:
            self.note_quirk(QuirkId.NO_SNAPSHOT)
            return None
        return fixed.url


def channel_of(channels: Sequence[Channel], number: int | None) -> Channel:
    """Channel `number` (None: the first), or OnvifFault naming how many there are."""
    wanted = number or 1
    found = next((c for c in channels if c.number == wanted), None)
    if found is None:
        raise OnvifFault(
            "GetVideoSources", f"the device has {len(channels)} channel(s), not a channel {wanted}"
        )
    return found


async def stream_uri(
    onvif_url: str,
    *,
    username: str,
    password: str,
    stream: str = "main",
    channel: int | None = None,
    call_timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """The RTSP URI (without credentials) of a camera's `main`/`sub` stream or profile token,
    on recorder channel `channel` (None: a camera, or a recorder's first channel).

    For the recorder and live view: ONVIF only, quirks fixed, H.264/H.265 only; OnvifError says
    why it failed (the caller should suggest setting `rtsp_url`)."""
    async with OnvifCamera.from_url(
        onvif_url, username=username, password=password, timeout=call_timeout
    ) as camera:
        if channel is None:
            profiles = await camera.profiles()
        else:
            profiles = list(channel_of(await camera.channels(), channel).profiles)
        choice = choose_profile(profiles, stream)
        where = f" on channel {channel}" if channel is not None else ""
        if choice.profile is None:
            raise OnvifFault("GetProfiles", f"the camera has no {stream!r} profile{where}")
        if choice.fallback_encoding is not None:
            raise OnvifFault(
                "GetProfiles",
                f"the camera's only {stream} stream{where} is {choice.fallback_encoding}, which "
                "rtcc-edge cannot record or stream live; set that stream to H.264 in the camera",
            )
        return await camera.stream_uri(choice.profile.token)
