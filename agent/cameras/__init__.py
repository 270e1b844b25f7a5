"""Adding cameras to the owner's configuration (the library behind `rtcc-edge cameras add`):
ONVIF cameras, a recorder's channels, and cameras reached by RTSP alone. Each is verified before
it is written (an ONVIF login, a recorder's channel list, or the stream opened), passwords are
stored encrypted with the device key and never in a URL, and a recorder's channels each become a
camera of their own (their own id, name, sharing and location).

    plan = await plan_onvif(url, login, config=config, profiles=profiles, channels=[1, 2, 3])
    write_cameras(config_path, config, plan, login, sharing)
"""

from agent.cameras.onvif import plan_onvif
from agent.cameras.plan import (
    AddError,
    Location,
    Login,
    NewCamera,
    Plan,
    Sharing,
    Skipped,
    default_id,
    parse_channels,
    split_rtsp_url,
)
from agent.cameras.rtsp import plan_rtsp
from agent.cameras.write import write_cameras

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
