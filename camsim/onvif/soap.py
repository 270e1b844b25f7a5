"""SOAP 1.2 as ONVIF uses it: read a request envelope, write a response or a fault.

Faults follow ONVIF Core §5.11 (generic faults): a Code (env:Sender / env:Receiver /
env:VersionMismatch), nested ter: subcodes and a Reason. The HTTP status follows the SOAP 1.2
HTTP binding: 400 for sender faults, 500 for receiver faults, unless the caller says otherwise
(401 when HTTP authentication is what failed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

from camsim.onvif.xml import NSMAP, SOAP_ENV, WSSE, XmlRejected, parse_xml, q, sub, to_bytes

FaultCode = Literal["Sender", "Receiver", "VersionMismatch"]


class SoapFault(Exception):
    """An ONVIF fault to send back instead of a response."""

    def __init__(
        self,
        code: FaultCode,
        subcodes: tuple[str, ...],
        reason: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.subcodes = subcodes  # ter:-prefixed local names, outermost first
        self.reason = reason
        self.status = status if status is not None else (500 if code == "Receiver" else 400)
        self.headers = headers or {}


def not_authorized(
    reason: str = "Sender not Authorized",
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> SoapFault:
    return SoapFault("Sender", ("ter:NotAuthorized",), reason, status=status, headers=headers)


def action_not_supported(reason: str = "Optional Action Not Implemented") -> SoapFault:
    return SoapFault("Receiver", ("ter:ActionNotSupported",), reason)


def invalid_arg(subcode: str, reason: str) -> SoapFault:
    return SoapFault("Sender", ("ter:InvalidArgVal", f"ter:{subcode}"), reason)


def well_formed(reason: str) -> SoapFault:
    return SoapFault("Sender", ("ter:WellFormed",), reason)


@dataclass(frozen=True)
class SoapRequest:
    operation: etree._Element  # the Body's first child
    security: etree._Element | None  # wsse:Security header, if any
    namespace: str = field(init=False)
    name: str = field(init=False)

    def __post_init__(self) -> None:
        qname = etree.QName(self.operation)
        object.__setattr__(self, "namespace", qname.namespace or "")
        object.__setattr__(self, "name", qname.localname)


def parse_request(data: bytes) -> SoapRequest:
    """Parse a SOAP 1.2 request; raise SoapFault (WellFormed / VersionMismatch) if it is not one."""
    try:
        root = parse_xml(data)
    except XmlRejected as exc:
        raise well_formed(str(exc)) from None
    if not isinstance(root.tag, str):
        raise well_formed("no root element")
    root_name = etree.QName(root)
    if root_name.localname != "Envelope":
        raise well_formed("the root element is not a SOAP Envelope")
    if root_name.namespace != SOAP_ENV:
        raise SoapFault("VersionMismatch", (), "only SOAP 1.2 envelopes are accepted")
    body = root.find(q(SOAP_ENV, "Body"))
    if body is None:
        raise well_formed("the Envelope has no Body")
    operation = next((c for c in body if isinstance(c.tag, str)), None)
    if operation is None:
        raise well_formed("the Body is empty")
    header = root.find(q(SOAP_ENV, "Header"))
    security = header.find(q(WSSE, "Security")) if header is not None else None
    return SoapRequest(operation=operation, security=security)


def envelope() -> tuple[etree._Element, etree._Element]:
    """A new response envelope and its Body."""
    root = etree.Element(q(SOAP_ENV, "Envelope"), nsmap=NSMAP)
    body = sub(root, SOAP_ENV, "Body")
    return root, body


def fault_bytes(fault: SoapFault) -> bytes:
    root, body = envelope()
    element = sub(body, SOAP_ENV, "Fault")
    code = sub(element, SOAP_ENV, "Code")
    sub(code, SOAP_ENV, "Value", f"env:{fault.code}")
    parent = code
    for subcode in fault.subcodes:
        parent = sub(parent, SOAP_ENV, "Subcode")
        sub(parent, SOAP_ENV, "Value", subcode)
    reason = sub(element, SOAP_ENV, "Reason")
    text = sub(reason, SOAP_ENV, "Text", fault.reason)
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    return to_bytes(root)
