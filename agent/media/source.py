"""Where a camera's video is pulled from: its RTSP URL, with credentials.

The recorder's workers, a live session's own stream and `rtcc-edge check`'s probe all open what
this gives them (through `agent.media.open`).

`rtsp_url` in the camera's configuration wins; with only `onvif_url` the camera is asked for
its stream URI over ONVIF (`onvif_stream_uri`). Credentials come from the
configuration (`enc:v1:` secrets are decrypted with the device key), go into the URL's userinfo
percent-encoded, and never into a log line: everything logged about a source goes through
`StreamSource.redact` (built on `agent.redact`, which also takes secret query parameters such
as `?user=admin&password=…` out of `display_url`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from agent.config import CameraConfig
from agent.redact import redact, redact_url, remember, url_secrets
from agent.secretbox import SecretError, reveal


class SourceError(Exception):
    """The camera's stream URL cannot be worked out (message safe to log and show).

    `camera_fault`: the camera did not answer (retried like a lost stream), as opposed to a
    configuration that cannot work (a password that cannot be decrypted, no address at all).
    """

    def __init__(self, message: str, *, camera_fault: bool = False) -> None:
        super().__init__(message)
        self.camera_fault = camera_fault


@dataclass(frozen=True)
class StreamSource:
    url: str = field(repr=False)  # carries the password: never log it
    display_url: str
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def redact(self, text: str) -> str:
        """`text` (an error message, say) with the URL's credentials taken out."""
        return redact(text.replace(self.url, self.display_url), self.secrets)


def _host_part(netloc: str) -> str:
    return netloc.rpartition("@")[2]


def rtsp_source(url: str, *, username: str | None, password: str | None) -> StreamSource:
    """An RTSP URL with `username`/`password` put in its userinfo (replacing any there)."""
    parts = urlsplit(url)
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        raise SourceError("not an rtsp:// URL")
    host = _host_part(parts.netloc)
    if username is None and (parts.username is not None or parts.password is not None):
        username = unquote(parts.username or "")
        password = unquote(parts.password) if parts.password is not None else None
    bare = urlunsplit(parts._replace(netloc=host))
    display = redact_url(bare)
    in_query = tuple(url_secrets(bare))  # `?user=admin&password=…`, decoded
    if username is None:
        return StreamSource(url=bare, display_url=display, secrets=in_query)
    userinfo = quote(username, safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    full = urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))
    secrets = [f"{userinfo}@", userinfo, *in_query]
    if password:
        secrets.append(password)  # redact() skips one too short to replace safely
    return StreamSource(url=full, display_url=display, secrets=tuple(secrets))


async def onvif_stream_uri(
    camera: CameraConfig, *, username: str | None, password: str | None
) -> str:
    """Ask the camera at `camera.onvif_url` for the RTSP URI of `camera.stream`: GetProfiles
    (of recorder channel `camera.channel`, if set), the profile for `main`/`sub`/a token,
    GetStreamUri, the camera's quirks fixed (our host, `&amp;` unescaped) by the ONVIF
    subsystem."""
    # Imported here: the ONVIF library (zeep, its WSDLs) costs memory that a daemon whose
    # cameras all have rtsp_url should not pay.
    from agent.onvif import OnvifError, stream_uri

    assert camera.onvif_url is not None
    try:
        return await stream_uri(
            camera.onvif_url,
            username=username or "",
            password=password or "",
            stream=camera.stream,
            channel=camera.channel,
        )
    except OnvifError as exc:
        raise SourceError(
            f"camera {camera.id}: could not get its stream over ONVIF ({exc}); "
            "`rtcc-edge check` says why, or set rtsp_url",
            # No answer is a camera fault (retried soon); refused credentials are not (retrying
            # them every few seconds gets the agent's address locked out by many cameras).
            camera_fault=exc.kind in ("unreachable", "timeout"),
        ) from exc


async def resolve_source(camera: CameraConfig, *, state_dir: Path) -> StreamSource:
    """The URL a recorder opens for `camera`, credentials included."""
    secret = camera.secret.get_secret_value() if camera.secret is not None else None
    try:
        password = reveal(secret, state_dir)
    except SecretError as exc:
        raise SourceError(f"camera {camera.id}: cannot decrypt its password: {exc}") from exc
    if camera.rtsp_url is not None:
        url = camera.rtsp_url
    elif camera.onvif_url is not None:
        url = await onvif_stream_uri(camera, username=camera.username, password=password)
    else:  # the config model already refuses this; kept for a clear error if that changes
        raise SourceError(f"camera {camera.id}: neither rtsp_url nor onvif_url is set")
    # The daemon's log leaves these out wherever they turn up (an FFmpeg error quoting the URL
    # decoded, say): the password, and those inside the URL (`?user=admin&password=…`).
    for secret in [password, *url_secrets(url)]:
        remember(secret)
    return rtsp_source(url, username=camera.username, password=password)
