"""Adding cameras to the owner's configuration (the library behind `rtcc-edge cameras add`):
ONVIF cameras, a recorder's channels, and cameras reached by RTSP alone, each verified first,
passwords encrypted. See `agent.cameras.add`."""

from agent.cameras.add import (
    AddError,
    Location,
    Login,
    NewCamera,
    Plan,
    Sharing,
    Skipped,
    default_id,
    parse_channels,
    plan_onvif,
    plan_rtsp,
    split_rtsp_url,
    write_cameras,
)

__all__ = [
    "AddError",
    "Location",
    "Login",
    "NewCamera",
    "Plan",
    "Sharing",
    "Skipped",
    "default_id",
    "parse_channels",
    "plan_onvif",
    "plan_rtsp",
    "split_rtsp_url",
    "write_cameras",
]
