"""camsim's ONVIF side: device and media services over SOAP 1.2, with WS-Security.

`OnvifServer` serves one camera described by an `OnvifDevice`; the rest of the package is its
parts (hardened XML parsing, SOAP envelopes and faults, UsernameToken and HTTP authentication,
the operation handlers).
"""

from camsim.onvif.device import MediaProfile, OnvifDevice
from camsim.onvif.server import OnvifServer

__all__ = ["MediaProfile", "OnvifDevice", "OnvifServer"]
