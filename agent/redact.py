"""Taking secrets out of text before it is shown, logged or put in a support bundle.

One place decides what a secret looks like, so the support bundle, the daemon's log and the
CLI's output cannot disagree:

- a URL's userinfo password (`rtsp://admin:PASS@cam/`);
- a URL query or fragment parameter whose name says it is a secret (`?user=admin&password=PASS`,
  `pwd=`, `pass=`, `passwd=`, `auth=`, `token=`, `key=`, `secret=`, `sig=` and their
  compounds such as `loginpas`, `api_key` or `access_token`), however its name or value is
  percent-encoded;
- an encrypted configuration secret (`enc:v1:…`);
- every plain secret the process has learned (`remember`), in its plain and percent-encoded forms.

`redact_url` keeps a URL usable for reading (host, path, the harmless parameters); `redact` does
the same to every URL found in free text (an FFmpeg error, a traceback, a log line).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlsplit

from agent.secretbox import PREFIX as ENC_PREFIX

REDACTED = "[redacted]"

# A parameter name, lowercased with everything but letters and digits removed, is a secret's
# name when it contains one of these...
_SECRET_PARTS = (
    "pass",
    "pwd",
    "psw",
    "secret",
    "token",
    "auth",
    "credential",
    "signature",
    "apikey",
    "privatekey",
    "sessionid",
)
# ...or ends with one of these (`loginpas`, `api_key`, `x-amz-signature`'s shorter cousins).
_SECRET_ENDINGS = ("pas", "pw", "key", "sig")
# Shorter than this, a remembered secret would match innocent text everywhere.
MIN_SECRET = 4

_SCHEME_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"<>`]+", re.IGNORECASE)
# userinfo: everything up to the last `@` before the path; the password is after the first `:`.
_USERINFO = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/?#@\s:]*:)[^/?#\s]*(?=@)", re.IGNORECASE)
# A `name=value` pair after `?`, `&`, `;` or `#` anywhere in text (a URL without its scheme,
# a query string quoted on its own).
_PARAM = re.compile(r"(?P<head>(?<=[?&;#])(?P<name>[^=&;#?\s'\"<>]+)=)(?P<value>[^&;#\s'\"<>]*)")
_ENC = re.compile(re.escape(ENC_PREFIX) + r"[A-Za-z0-9_=-]+")

_remembered: set[str] = set()
_lock = threading.Lock()


def is_secret_name(name: str) -> bool:
    """Whether a query parameter called `name` (encoded or not) carries a secret."""
    plain = re.sub(r"[^a-z0-9]", "", unquote_plus(name).lower())
    if not plain:
        return False
    return any(part in plain for part in _SECRET_PARTS) or plain.endswith(_SECRET_ENDINGS)


def _params(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if is_secret_name(match.group("name")) and match.group("value"):
            return match.group("head") + REDACTED
        return match.group(0)

    return _PARAM.sub(replace, text)


def redact_url(url: str) -> str:
    """`url` with its userinfo password and every secret parameter replaced by `[redacted]`
    (the user name, host, path and other parameters kept, so it still says which camera)."""
    out = _USERINFO.sub(lambda m: m.group("head") + REDACTED, url)
    cut = min((i for i in (out.find("?"), out.find("#")) if i >= 0), default=-1)
    if cut < 0:
        return out
    return out[:cut] + _params(out[cut:])


def url_secrets(url: str) -> list[str]:
    """The secrets `url` carries, decoded: its userinfo password and every secret parameter's
    value (so they can be `remember`ed and found elsewhere, decoded or not)."""
    found: list[str] = []
    parts = urlsplit(url)
    with contextlib.suppress(ValueError):
        if parts.password:
            found.append(unquote(parts.password))
    for name, value in parse_qsl(f"{parts.query}&{parts.fragment.rpartition('?')[2]}"):
        if is_secret_name(name) and value:
            found.append(value)
    return found


def remember(secret: str | None) -> None:
    """From now on, `secret` (a decrypted camera password, a broker password) is taken out of
    everything this process redacts, its log included."""
    if secret is None or len(secret) < MIN_SECRET:
        return
    with _lock:
        _remembered.add(secret)


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as it may appear in text: plain and percent-encoded, longest first (so a
    secret containing another is replaced whole)."""
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= MIN_SECRET:
            forms.update((secret, quote(secret, safe=""), quote_plus(secret, safe="")))
    return sorted(forms, key=len, reverse=True)


def redact_tree(node: object, secrets: Iterable[str] = ()) -> object:
    """`redact` applied to every string inside a JSON-like value (a log event, a report), so
    the structure survives whatever a secret looks like."""
    if isinstance(node, str):
        return redact(node, secrets)
    if isinstance(node, dict):
        return {key: redact_tree(value, secrets) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [redact_tree(value, secrets) for value in node]
    if isinstance(node, BaseException):
        return redact(repr(node), secrets)
    return node


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret in it replaced: `secrets` and those `remember`ed, URL
    passwords and secret parameters, encrypted configuration secrets."""
    with _lock:
        known = [*secrets, *_remembered]
    for form in secret_forms(known):
        text = text.replace(form, REDACTED)
    text = _SCHEME_URL.sub(lambda m: redact_url(m.group(0)), text)
    # Query strings without a scheme (`cam/live?user=a&password=b`) and what the URL pattern
    # stopped short of (a URL cut by a quote).
    text = _USERINFO.sub(lambda m: m.group("head") + REDACTED, text)
    text = _params(text)
    return _ENC.sub(REDACTED, text)
