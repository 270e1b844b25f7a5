"""Firmware profiles: what is publicly known about each camera vendor, and how to use it.

One TOML file per vendor in `firmware_profiles/` (see its README for the schema in words). The
package is split by job:

- `schema`: the models every file is validated against (and the model/name normalisation
  their patterns assume);
- `loading`: `load_profiles()` finds and reads the files and fails with every problem at once;
- `matching`: `ProfileSet` recognises a camera from what ONVIF and WS-Discovery report and
  lists the RTSP paths, ports, quirks and recorder paths worth trying;
- `assessment`: a firmware string against the published advisories and known ONVIF defects.
  A check that cannot be decided says "unknown", never "safe".
"""

from agent.compat.profiles.assessment import Coverage, Finding
from agent.compat.profiles.loading import (
    PROFILES_ENV,
    ProfileError,
    default_profiles_dir,
    load_profiles,
)
from agent.compat.profiles.matching import ChannelPath, ProfileMatch, ProfileSet
from agent.compat.profiles.schema import (
    OnvifDefect,
    Quirk,
    VendorProfile,
    Vulnerability,
    render_channel_path,
)

__all__ = [
    "PROFILES_ENV",
    "ChannelPath",
    "Coverage",
    "Finding",
    "OnvifDefect",
    "ProfileError",
    "ProfileMatch",
    "ProfileSet",
    "Quirk",
    "VendorProfile",
    "Vulnerability",
    "default_profiles_dir",
    "load_profiles",
    "render_channel_path",
]
