"""Diagnostics: `rtcc-edge doctor` checks that the whole site is ready, and packs the support
bundle a technician sends.

- `checks`: one function per site check (configuration, clock, store, broker; the broker
  through `agent.link.probe_broker`, the link's own MQTT client);
- `site`: `run_doctor(config_path)` runs them and every camera's compatibility check into one
  `DoctorReport`;
- `bundle`: `write_bundle` writes the report, the redacted configuration, logs and versions.

Compatibility itself (what a camera is and whether it will do) stays in `agent.compat`.
"""

from agent.doctor.bundle import write_bundle
from agent.doctor.site import DoctorOutcome, run_doctor

__all__ = ["DoctorOutcome", "run_doctor", "write_bundle"]
