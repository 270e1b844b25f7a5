"""Camera compatibility: what is publicly known about each vendor's cameras and firmware.

`load_profiles()` reads the `firmware_profiles/` data (the `profiles` package: schema, loading,
matching, assessment); the returned `ProfileSet` recognises a camera, lists RTSP paths to try
and checks firmware against published advisories.

`check_camera(Target, options=CheckOptions, profiles=...)` checks one camera end to end (ONVIF,
its streams measured with `probe_stream`, firmware, the verdicts) into a `CameraReport`. Streams
are found and opened through `agent.media`, as the recorder's are; compat never imports the
recorder, nor the recorder compat (tests/media/test_layering.py).
The whole site's diagnostics (`rtcc-edge doctor`, the support bundle) are `agent.doctor`'s.
The JSON layout of the reports is documented in docs/compat-json.md.
"""

from agent.compat.check import (
    CheckOptions,
    CheckResult,
    Target,
    check_camera,
    check_cameras,
    storage_facts,
)
from agent.compat.probe import (
    ProbeError,
    ProbeOptions,
    StreamProbe,
    probe_stream,
    probe_stream_async,
)
from agent.compat.profiles import (
    PROFILES_ENV,
    Finding,
    OnvifDefect,
    ProfileError,
    ProfileMatch,
    ProfileSet,
    Quirk,
    VendorProfile,
    Vulnerability,
    load_profiles,
)
from agent.compat.report import (
    CameraReport,
    Check,
    DiscoveryReport,
    DoctorReport,
    Status,
    json_schema,
)
from agent.compat.versions import (
    FirmwareVersion,
    compare_to_release,
    compare_versions,
    parse_version,
)
from agent.quirks import QuirkId

__all__ = [
    "PROFILES_ENV",
    "CameraReport",
    "Check",
    "CheckOptions",
    "CheckResult",
    "DiscoveryReport",
    "DoctorReport",
    "Finding",
    "FirmwareVersion",
    "OnvifDefect",
    "ProbeError",
    "ProbeOptions",
    "ProfileError",
    "ProfileMatch",
    "ProfileSet",
    "Quirk",
    "QuirkId",
    "Status",
    "StreamProbe",
    "Target",
    "VendorProfile",
    "Vulnerability",
    "check_camera",
    "check_cameras",
    "compare_to_release",
    "compare_versions",
    "json_schema",
    "load_profiles",
    "parse_version",
    "probe_stream",
    "probe_stream_async",
    "storage_facts",
]
