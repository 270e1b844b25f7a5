"""ONVIF device management operations (ver10 device WSDL) that camsim answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lxml import etree

from camsim.onvif.device import OnvifDevice
from camsim.onvif.soap import SoapFault, action_not_supported
from camsim.onvif.xml import TDS, TRT, TT, q, sub
from camsim.persona import Quirk

Handler = Callable[[OnvifDevice, etree._Element, str | None], etree._Element]

# Versions as a 2.6-era Profile S camera reports them.
_DEVICE_VERSION = (2, 60)
_MEDIA_VERSION = (2, 60)


def _response(name: str) -> etree._Element:
    return etree.Element(q(TDS, f"{name}Response"))


def _date_time(parent: etree._Element, name: str, when: datetime) -> None:
    element = sub(parent, TT, name)
    time = sub(element, TT, "Time")
    sub(time, TT, "Hour", when.hour)
    sub(time, TT, "Minute", when.minute)
    sub(time, TT, "Second", when.second)
    date = sub(element, TT, "Date")
    sub(date, TT, "Year", when.year)
    sub(date, TT, "Month", when.month)
    sub(date, TT, "Day", when.day)


def get_system_date_and_time(
    device: OnvifDevice, _op: etree._Element, _local: str | None
) -> etree._Element:
    response = _response("GetSystemDateAndTime")
    info = sub(response, TDS, "SystemDateAndTime")
    # A camera whose clock is off is not syncing with NTP.
    sub(info, TT, "DateTimeType", "NTP" if device.clock_skew == 0 else "Manual")
    sub(info, TT, "DaylightSavings", False)
    tz = sub(info, TT, "TimeZone")
    sub(tz, TT, "TZ", "UTC0")
    now = device.now()
    _date_time(info, "UTCDateTime", now)
    _date_time(info, "LocalDateTime", now)
    return response


def get_device_information(
    device: OnvifDevice, _op: etree._Element, _local: str | None
) -> etree._Element:
    response = _response("GetDeviceInformation")
    sub(response, TDS, "Manufacturer", device.manufacturer)
    sub(response, TDS, "Model", device.model)
    sub(response, TDS, "FirmwareVersion", device.firmware)
    sub(response, TDS, "SerialNumber", device.serial)
    sub(response, TDS, "HardwareId", device.hardware_id)
    return response


def _device_capabilities(parent: etree._Element, device: OnvifDevice, local: str | None) -> None:
    caps = sub(parent, TT, "Device")
    sub(caps, TT, "XAddr", device.device_url(local=local))
    network = sub(caps, TT, "Network")
    for flag in ("IPFilter", "ZeroConfiguration", "IPVersion6", "DynDNS"):
        sub(network, TT, flag, False)
    system = sub(caps, TT, "System")
    sub(system, TT, "DiscoveryResolve", False)
    sub(system, TT, "DiscoveryBye", Quirk.NO_WS_DISCOVERY not in device.quirks)
    for flag in ("RemoteDiscovery", "SystemBackup", "SystemLogging", "FirmwareUpgrade"):
        sub(system, TT, flag, False)
    versions = sub(system, TT, "SupportedVersions")
    sub(versions, TT, "Major", _DEVICE_VERSION[0])
    sub(versions, TT, "Minor", _DEVICE_VERSION[1])
    security = sub(caps, TT, "Security")
    for flag in (
        "TLS1.1",
        "TLS1.2",
        "OnboardKeyGeneration",
        "AccessPolicyConfig",
        "X.509Token",
        "SAMLToken",
        "KerberosToken",
        "RELToken",
    ):
        sub(security, TT, flag, False)


def _media_capabilities(parent: etree._Element, device: OnvifDevice, local: str | None) -> None:
    caps = sub(parent, TT, "Media")
    sub(caps, TT, "XAddr", device.media_url(local=local))
    streaming = sub(caps, TT, "StreamingCapabilities")
    sub(streaming, TT, "RTPMulticast", False)
    sub(streaming, TT, "RTP_TCP", True)
    sub(streaming, TT, "RTP_RTSP_TCP", True)


def get_capabilities(device: OnvifDevice, op: etree._Element, local: str | None) -> etree._Element:
    if Quirk.NO_GET_CAPABILITIES in device.quirks:
        raise action_not_supported()
    categories = {
        (c.text or "").strip() for c in op.findall(q(TDS, "Category")) if isinstance(c.tag, str)
    } or {"All"}
    unknown = categories - {"All", "Device", "Media"}
    if unknown:
        raise SoapFault(
            "Receiver",
            ("ter:ActionNotSupported", "ter:NoSuchService"),
            f"No such service: {sorted(unknown)[0][:40]}",
        )
    response = _response("GetCapabilities")
    caps = sub(response, TDS, "Capabilities")
    if categories & {"All", "Device"}:
        _device_capabilities(caps, device, local)
    if categories & {"All", "Media"}:
        _media_capabilities(caps, device, local)
    return response


def _service(
    parent: etree._Element,
    namespace: str,
    xaddr: str,
    version: tuple[int, int],
    capabilities: etree._Element | None,
) -> None:
    service = sub(parent, TDS, "Service")
    sub(service, TDS, "Namespace", namespace)
    sub(service, TDS, "XAddr", xaddr)
    if capabilities is not None:
        holder = sub(service, TDS, "Capabilities")
        holder.append(capabilities)
    ver = sub(service, TDS, "Version")
    sub(ver, TT, "Major", version[0])
    sub(ver, TT, "Minor", version[1])


def _device_service_capabilities() -> etree._Element:
    caps = etree.Element(q(TDS, "Capabilities"))
    sub(caps, TDS, "Network", IPFilter="false", ZeroConfiguration="false", IPVersion6="false")
    sub(caps, TDS, "Security", UsernameToken="true", HttpDigest="true")
    sub(caps, TDS, "System", DiscoveryResolve="false", DiscoveryBye="true")
    return caps


def _media_service_capabilities(device: OnvifDevice) -> etree._Element:
    snapshot = "false" if Quirk.NO_SNAPSHOT in device.quirks else "true"
    caps = etree.Element(q(TRT, "Capabilities"), SnapshotUri=snapshot, Rotation="false")
    sub(caps, TRT, "ProfileCapabilities", MaximumNumberOfProfiles=str(len(device.profiles)))
    sub(
        caps,
        TRT,
        "StreamingCapabilities",
        RTPMulticast="false",
        RTP_TCP="true",
        RTP_RTSP_TCP="true",
    )
    return caps


def get_services(device: OnvifDevice, op: etree._Element, local: str | None) -> etree._Element:
    if Quirk.NO_GET_SERVICES in device.quirks:
        raise action_not_supported()
    include = (op.findtext(q(TDS, "IncludeCapability")) or "").strip().lower() in ("true", "1")
    response = _response("GetServices")
    _service(
        response,
        TDS,
        device.device_url(local=local),
        _DEVICE_VERSION,
        _device_service_capabilities() if include else None,
    )
    _service(
        response,
        TRT,
        device.media_url(local=local),
        _MEDIA_VERSION,
        _media_service_capabilities(device) if include else None,
    )
    return response


def get_scopes(device: OnvifDevice, _op: etree._Element, _local: str | None) -> etree._Element:
    response = _response("GetScopes")
    for scope, fixed in device.scopes():
        element = sub(response, TDS, "Scopes")
        sub(element, TT, "ScopeDef", "Fixed" if fixed else "Configurable")
        sub(element, TT, "ScopeItem", scope)
    return response


def get_network_interfaces(
    device: OnvifDevice, _op: etree._Element, local: str | None
) -> etree._Element:
    response = _response("GetNetworkInterfaces")
    interface = sub(response, TDS, "NetworkInterfaces", token="eth0")  # noqa: S106 - ONVIF token
    sub(interface, TT, "Enabled", True)
    info = sub(interface, TT, "Info")
    sub(info, TT, "Name", "eth0")
    sub(info, TT, "HwAddress", device.mac)
    sub(info, TT, "MTU", 1500)
    ipv4 = sub(interface, TT, "IPv4")
    sub(ipv4, TT, "Enabled", True)
    config = sub(ipv4, TT, "Config")
    manual = sub(config, TT, "Manual")
    address = device.reachable_host(local)
    sub(manual, TT, "Address", address)
    sub(manual, TT, "PrefixLength", 8 if address.startswith("127.") else 24)
    sub(config, TT, "DHCP", False)
    return response


def get_hostname(device: OnvifDevice, _op: etree._Element, _local: str | None) -> etree._Element:
    response = _response("GetHostname")
    info = sub(response, TDS, "HostnameInformation")
    sub(info, TT, "FromDHCP", False)
    sub(info, TT, "Name", device.hostname)
    return response


HANDLERS: dict[str, Handler] = {
    "GetSystemDateAndTime": get_system_date_and_time,
    "GetDeviceInformation": get_device_information,
    "GetCapabilities": get_capabilities,
    "GetServices": get_services,
    "GetScopes": get_scopes,
    "GetNetworkInterfaces": get_network_interfaces,
    "GetHostname": get_hostname,
}
