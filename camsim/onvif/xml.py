"""XML plumbing shared by the ONVIF service and WS-Discovery: namespaces, a hardened parser,
and small builders.

Everything camsim parses comes from the network, so the parser resolves no entities, loads no
DTD, touches no network, refuses documents with a DOCTYPE and bounds the input size.
"""

from __future__ import annotations

from lxml import etree

SOAP_ENV = "http://www.w3.org/2003/05/soap-envelope"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TT = "http://www.onvif.org/ver10/schema"
TER = "http://www.onvif.org/ver10/error"
DN = "http://www.onvif.org/ver10/network/wsdl"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"

NSMAP = {
    "env": SOAP_ENV,
    "tds": TDS,
    "trt": TRT,
    "tt": TT,
    "ter": TER,
}

MAX_XML_BYTES = 64 * 1024


class XmlRejected(ValueError):
    """The input is not a document camsim is willing to read (malformed, too big, has a DTD)."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml(data: bytes, *, limit: int = MAX_XML_BYTES) -> etree._Element:
    """Parse untrusted bytes into an element tree, or raise XmlRejected saying why."""
    if len(data) > limit:
        raise XmlRejected(f"document larger than {limit} bytes")
    if not data.strip():
        raise XmlRejected("empty document")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(f"not well-formed XML: {exc.msg}") from None
    # fromstring of a bare DOCTYPE-only or entity-laden body would still parse; refuse any DTD.
    if root.getroottree().docinfo.doctype:
        raise XmlRejected("DTDs are not accepted")
    return root


def q(ns: str, name: str) -> str:
    """Clark notation `{ns}name`."""
    return f"{{{ns}}}{name}"


def sub(
    parent: etree._Element,
    ns: str,
    name: str,
    text: str | int | float | bool | None = None,
    **attrs: str,
) -> etree._Element:
    """Append a child element with optional text (booleans as xs:boolean) and attributes."""
    child = etree.SubElement(parent, q(ns, name), attrib=attrs or None)
    if text is not None:
        child.text = _text(text)
    return child


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_bytes(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
