"""Reading WS-Discovery replies as cameras really send them.

The specs (WS-Discovery 2005/04 as ONVIF profiles it) want a SOAP 1.2 envelope whose Body holds
`ProbeMatches` with one `ProbeMatch` per device, `RelatesTo` naming our Probe, and XAddrs
separated by single spaces. Cameras bend every part of that, and a reply that bends it is still
an answer: discarding it makes the technician's table say the camera "ignores WS-Discovery",
which is false. So this reader accepts, and notes as a deviation:

- a `ProbeMatch` straight in the Body (no `ProbeMatches` wrapper), or a reply with no SOAP
  envelope at all; SOAP 1.1 instead of 1.2; any namespace prefixes, or none;
- XML that is not well-formed (an unescaped `&` in an XAddr, bytes that are not in the declared
  encoding, a trailing NUL from a C string): read again by libxml2's recovering parser;
- `RelatesTo` echoing our MessageID without its `urn:` or `uuid:` prefix, or in another case;
- several XAddrs, separated by any whitespace (tabs, newlines) or commas, with extra spaces.

A reply that names another Probe (`RelatesTo` set to something we never sent) is not ours and
is ignored. Everything else that cannot be used is reported with the reason, so discovery can
say "answered, but the answer could not be used" instead of "ignores WS-Discovery".

Nothing here trusts a datagram: no DTDs, no entities, no network, bounded sizes and counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

Via = Literal["multicast", "unicast"]

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
MAX_ITEMS = 64
MAX_ITEM_LENGTH = 1024
MAX_XADDRS = 8
_STRICT = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)
_LENIENT = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_comments=True,
    recover=True,
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s,;\"'<>]+")
_ID_PREFIX = re.compile(r"^(?:urn:)?(?:uuid:)?", re.IGNORECASE)

# Deviations, in the words the technician reads after "bends the standard (…)".
NO_WRAPPER = "no ProbeMatches wrapper"
NO_ENVELOPE = "no SOAP envelope"
SOAP11 = "SOAP 1.1 instead of 1.2"
NOT_WELL_FORMED = "XML that is not well-formed"
LOOSE_RELATES_TO = "RelatesTo without the urn:uuid: form"
LOOSE_XADDRS = "XAddrs not separated by single spaces"


@dataclass(frozen=True)
class ProbeMatch:
    """One device's answer to one of our Probes."""

    endpoint: str | None  # EndpointReference address, normally urn:uuid:...
    types: tuple[str, ...]
    scopes: tuple[str, ...]
    xaddrs: tuple[str, ...]
    sender: str
    sender_port: int
    via: Via
    deviations: tuple[str, ...] = ()


@dataclass
class ReplyReading:
    """What one datagram said: its matches, or why an answer could not be used."""

    matches: list[ProbeMatch] = field(default_factory=list)
    problem: str | None = None  # an answer that cannot be used, in words
    ours: bool = True  # False: it answers someone else's Probe (or is not an answer)


def _local(element: etree._Element) -> str:
    return etree.QName(element.tag).localname if isinstance(element.tag, str) else ""


def _child(element: etree._Element | None, name: str) -> etree._Element | None:
    if element is None:
        return None
    return next((c for c in element if _local(c) == name), None)


def _text_items(element: etree._Element | None) -> tuple[str, ...]:
    if element is None:
        return ()
    words = "".join(element.itertext())[: MAX_ITEMS * MAX_ITEM_LENGTH].split()[:MAX_ITEMS]
    return tuple(w for w in words if len(w) <= MAX_ITEM_LENGTH and w.isprintable())


def _xaddrs(element: etree._Element | None) -> tuple[tuple[str, ...], bool]:
    """(the URLs in XAddrs, whether they were separated by something else than spaces)."""
    if element is None:
        return (), False
    text = "".join(element.itertext())[: MAX_XADDRS * MAX_ITEM_LENGTH]
    urls = [u for u in _URL.findall(text) if len(u) <= MAX_ITEM_LENGTH and u.isprintable()]
    loose = " ".join(urls) != text.strip()
    return tuple(dict.fromkeys(urls))[:MAX_XADDRS], loose


def normalise_id(message_id: str) -> str:
    """A MessageID as compared with RelatesTo: no `urn:`/`uuid:` prefix, no case, no spaces."""
    return _ID_PREFIX.sub("", message_id.strip()).lower()


def _parse(data: bytes) -> tuple[etree._Element | None, bool]:
    """(root, read leniently); a document with a DTD is refused (None)."""
    # Leading blanks before the XML declaration and a C string's trailing NUL are common.
    cleaned = data.strip(b" \t\r\n\x00")
    lenient = False
    try:
        root = etree.fromstring(cleaned, parser=_STRICT)
    except (etree.XMLSyntaxError, ValueError):
        try:
            root = etree.fromstring(cleaned, parser=_LENIENT)
        except (etree.XMLSyntaxError, ValueError):
            return None, True
        lenient = True
    if root is None or root.getroottree().docinfo.doctype:
        return None, lenient
    return root, lenient


def _match_elements(root: etree._Element) -> tuple[list[etree._Element], list[str]]:
    """The ProbeMatch elements wherever the reply put them, and how that bends the spec."""
    deviations: list[str] = []
    if _local(root) == "Envelope":
        if etree.QName(root).namespace != SOAP12:
            deviations.append(SOAP11)
        container = _child(root, "Body")
        if container is None:
            return [], deviations
    else:
        deviations.append(NO_ENVELOPE)
        container = root
    if _local(container) == "ProbeMatch":
        return [container], [*deviations, NO_WRAPPER]
    wrapper = (
        container if _local(container) == "ProbeMatches" else _child(container, "ProbeMatches")
    )
    if wrapper is not None:
        return [m for m in wrapper if _local(m) == "ProbeMatch"][:MAX_ITEMS], deviations
    bare = [m for m in container if _local(m) == "ProbeMatch"][:MAX_ITEMS]
    return bare, [*deviations, NO_WRAPPER] if bare else deviations


def _relates_to(root: etree._Element) -> str | None:
    header = _child(root, "Header") if _local(root) == "Envelope" else None
    element = _child(header, "RelatesTo")
    return None if element is None else "".join(element.itertext()).strip()


def read_reply(
    data: bytes, sender: tuple[str, int], *, message_ids: frozenset[str], via: Via
) -> ReplyReading:
    """The ProbeMatches of one datagram that answers one of our `message_ids`."""
    root, lenient = _parse(data)
    if root is None:
        return ReplyReading(problem="it is not XML (or carries a DTD)")
    relates_to = _relates_to(root)
    deviations = [NOT_WELL_FORMED] if lenient else []
    if relates_to is not None:
        wanted = {normalise_id(m) for m in message_ids}
        if relates_to not in message_ids:
            if normalise_id(relates_to) not in wanted:
                return ReplyReading(ours=False)  # an answer to someone else's Probe
            deviations.append(LOOSE_RELATES_TO)
    elements, found_deviations = _match_elements(root)
    deviations += found_deviations
    if not elements:
        if _local(root) == "Envelope" and _child(_child(root, "Body"), "Probe") is not None:
            return ReplyReading(ours=False)  # a Probe (our own, echoed by a loop), not an answer
        return ReplyReading(problem="it holds no ProbeMatch")
    reading = ReplyReading()
    for element in elements:
        reference = _child(element, "EndpointReference")
        endpoint = _text_items(_child(reference, "Address"))
        xaddrs, loose = _xaddrs(_child(element, "XAddrs"))
        reading.matches.append(
            ProbeMatch(
                endpoint=endpoint[0] if endpoint else None,
                types=_text_items(_child(element, "Types")),
                scopes=_text_items(_child(element, "Scopes")),
                xaddrs=xaddrs,
                sender=sender[0],
                sender_port=sender[1],
                via=via,
                deviations=tuple(dict.fromkeys([*deviations, *([LOOSE_XADDRS] if loose else [])])),
            )
        )
    return reading


def parse_probe_matches(
    data: bytes, sender: tuple[str, int], *, message_ids: frozenset[str], via: Via
) -> list[ProbeMatch]:
    """The ProbeMatch entries of a datagram that answers one of `message_ids` ([] otherwise)."""
    return read_reply(data, sender, message_ids=message_ids, via=via).matches
