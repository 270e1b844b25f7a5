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
   trip and repeats the request on every connect).
3. GetServices, or GetCapabilities when the camera does not implement it; every service address
   is rewritten to the host (and, for services on the device service's port, the port) we
   reached: `0.0.0.0`, a duplicated port or a LAN address seen through NAT are all fixed here.

Stream URIs are unescaped (`&amp;`), stripped of credentials and pointed at the host we reached.
Every call runs under our own timeout (the library's default is 90 s), and every failure is an
`agent.onvif.errors.OnvifError` with a plain-words message.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from types import ModuleType
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import aiohttp

from agent.log import ensure_configured, get_logger
from agent.onvif.addresses import (
    XADDR_DUPLICATE_PORT,
    XADDR_OTHER_HOST,
    XADDR_ZERO_HOST,
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
from agent.onvif.soap import (
    AUTH_SUBCODES,
    DEVICE_SERVICE_PATH,
    ClockReading,
    describe_connect_error,
    http_auth_challenge,
    system_date_and_time,
)

log = get_logger(__name__)

AuthMethod = Literal["password_digest", "password_text", "http_digest"]
DEFAULT_TIMEOUT = 5.0
# Offsets at least this large are compensated in PasswordDigest's Created (the rule;
# cameras typically accept ±5 min, but some are stricter).
COMPENSATE_OFFSET = 5.0

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

QUIRK_DETAILS = {
    XADDR_ZERO_HOST: "advertises its service addresses with host 0.0.0.0",
    XADDR_DUPLICATE_PORT: "advertises its service addresses with the port written twice",
    XADDR_OTHER_HOST: "advertises service addresses on another host than the one we reached "
    "(its LAN address seen through NAT, or a name)",
    "escaped_stream_uri": "returns its stream URI XML-escaped twice (&amp; for &)",
    "no_get_services": "does not implement GetServices",
    "password_text_only": "refuses WS-Security PasswordDigest and accepts only PasswordText",
    "http_digest_auth": "ignores WS-Security and requires HTTP Digest authentication",
    "no_snapshot": "does not offer an ONVIF snapshot URI",
    "stream_uri_fails": "answers GetStreamUri with a fault",
}
QUIRK_WORKAROUNDS = {
    XADDR_ZERO_HOST: "service addresses rewritten to the address we reached",
    XADDR_DUPLICATE_PORT: "duplicated port removed",
    XADDR_OTHER_HOST: "service addresses rewritten to the address we reached",
    "escaped_stream_uri": "stream URI unescaped",
    "no_get_services": "service addresses taken from GetCapabilities",
    "password_text_only": "authenticated with PasswordText",
    "http_digest_auth": "authenticated with HTTP Digest",
    "no_snapshot": "snapshots are taken from the video stream instead",
}

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
class MediaProfile:
    """A media profile as GetProfiles describes it (None where the camera left a field out)."""

    token: str
    name: str | None
    encoding: str | None
    width: int | None
    height: int | None
    fps_limit: float | None
    bitrate_kbps: int | None
    gov_length: int | None

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)


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
    if isinstance(cause, aiohttp.ClientError | ConnectionError):
        return NoAnswer(f"{operation}: the connection failed ({type(cause).__name__})")
    return MalformedAnswer(
        f"{operation}: could not understand the camera's answer ({type(cause).__name__}: "
        f"{quoted(cause, 120)})"
    )


def select_profile(profiles: Iterable[MediaProfile], stream: str) -> MediaProfile | None:
    """The profile for `main` (the most pixels), `sub` (the fewest, if not main) or a token."""
    video = [p for p in profiles if p.pixels > 0]
    if stream == "main":
        return max(video, key=lambda p: p.pixels, default=None)
    if stream == "sub":
        main = max(video, key=lambda p: p.pixels, default=None)
        rest = [p for p in video if p is not main]
        return min(rest, key=lambda p: p.pixels, default=None)
    return next((p for p in profiles if p.token == stream), None)


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
        self.clock_error: str | None = None
        self.info: DeviceInfo | None = None
        self.auth: AuthMethod | None = None
        self.compensated = False
        self.services: dict[str, str] = {}
        self.advertised_services: dict[str, str] = {}
        self._quirks: dict[str, QuirkSeen] = {}
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

    def note_quirk(self, quirk_id: str, *, worked_around: bool = True) -> None:
        if quirk_id not in self._quirks:
            workaround = QUIRK_WORKAROUNDS.get(quirk_id) if worked_around else None
            detail = QUIRK_DETAILS.get(quirk_id, quirk_id)
            self._quirks[quirk_id] = QuirkSeen(quirk_id, detail, workaround)

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
        except (AuthFailed, OnvifFault) as exc:
            # Some cameras want credentials even for the clock (against ONVIF Core §5.9.4.3).
            self.clock_error = str(exc)
        challenge = await http_auth_challenge(self._session, self.device_url, within=self.timeout)
        offset = self.clock.offset if self.clock is not None else None
        dt_diff = None
        if offset is not None and abs(offset) >= COMPENSATE_OFFSET:
            dt_diff = timedelta(seconds=offset)
            self.compensated = True
        methods: list[AuthMethod] = ["password_digest", "password_text", "http_digest"]
        if challenge == "digest":
            methods.remove("password_text")
        self.info = await self._authenticate(methods, dt_diff)
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
            self._client = client
            self.auth = method
            if method == "password_text":
                self.note_quirk("password_text_only")
            elif method == "http_digest":
                self.note_quirk("http_digest_auth")
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
            advertised = await self._capabilities(client)
            self.note_quirk("no_get_services")
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
        answer = await self._invoke(client, "media", "GetProfiles", None)
        profiles: list[MediaProfile] = []
        for item in list(answer or [])[:32]:
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
                )
            )
        if not profiles:
            raise MalformedAnswer("GetProfiles: the camera lists no usable media profile")
        return profiles

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
                self.note_quirk("no_snapshot")
                return None
            raise
        uri = _get(answer, "Uri")
        if not isinstance(uri, str) or not uri.strip():
            self.note_quirk("no_snapshot")
            return None
        device_port = advertised_port(self.advertised_services.get("device", ""))
        try:
            fixed = fix_service_url(
                uri.strip(), reached_host=self.host, reached_port=self.port, device_port=device_port
            )
        except MalformedAnswer:
            self.note_quirk("no_snapshot")
            return None
        return fixed.url


async def stream_uri(
    onvif_url: str,
    *,
    username: str,
    password: str,
    stream: str = "main",
    call_timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """The RTSP URI (without credentials) of a camera's `main`/`sub` stream or profile token.

    For the recorder: ONVIF only, quirks fixed; OnvifError says why it failed (the caller should
    suggest setting `rtsp_url`)."""
    async with OnvifCamera.from_url(
        onvif_url, username=username, password=password, timeout=call_timeout
    ) as camera:
        profile = select_profile(await camera.profiles(), stream)
        if profile is None:
            raise OnvifFault("GetProfiles", f"the camera has no {stream!r} profile")
        return await camera.stream_uri(profile.token)
