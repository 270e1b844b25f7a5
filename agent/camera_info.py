"""What the agent learned about each configured camera when it last checked it: vendor,
model, firmware, the camera's clock offset (for clip manifests) and the compatibility verdict
(for the registry the RTCC's map shows). `rtcc-edge check CAMERA` and `rtcc-edge doctor` write
`<state_dir>/camera-info.json`; the daemon and delivery read it. Absent or unreadable, every
fact is None and the verdict unknown — a manifest never invents one.

The file is a JSON object keyed by camera id:

    {"front-door": {"vendor": "Hikvision", "model": "DS-2CD2143G2-I",
                    "firmware": "V5.7.3", "clock_offset_s": -1.4,
                    "clock_measured": "2026-11-22T02:10:00Z", "verdict": "warn",
                    "advice": ["The camera sends 10 frames a second; …"],
                    "checked": "2026-11-22T02:00:00Z"}}

`advice` is each failed, then each doubtful, check's reason and remedy, as the check said them:
the owner's page shows it beside the verdict.

`clock_offset_s` is measured by the check and, while the daemon runs, again periodically and at
each reconnect of the camera's recorder (`agent.cameras.clock_watch`); `clock_measured` says
when (an entry without it was measured by the check, at `checked`).

Unknown keys are ignored; a value of the wrong type counts as unknown.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from agent.fsutil import atomic_write
from agent.log import get_logger

log = get_logger(__name__)

CAMERA_INFO_FILE = "camera-info.json"
_MAX_FILE_BYTES = 1024 * 1024
_MAX_TEXT = 128
_MAX_ADVICE = 8
_MAX_ADVICE_TEXT = 1000


@dataclass(frozen=True)
class CameraFacts:
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    clock_offset_s: float | None = None  # camera clock minus agent clock
    clock_measured: datetime | None = None  # when clock_offset_s was measured (agent clock)
    verdict: Verdict = "unknown"  # the last compatibility check's overall result
    advice: tuple[str, ...] = ()  # what to do about each failed or doubtful check, in words
    checked: datetime | None = None  # when the last compatibility check ran (agent clock)


Verdict = Literal["pass", "warn", "fail", "unknown"]
_VERDICTS = ("pass", "warn", "fail", "unknown")


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and value.isprintable():
        return value.strip()[:_MAX_TEXT]
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _read_all(state_dir: Path) -> dict[str, Any]:
    path = Path(state_dir) / CAMERA_INFO_FILE
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("camera_info_unreadable", file=str(path), error=exc.strerror)
        return {}
    if len(raw) > _MAX_FILE_BYTES:
        log.warning("camera_info_too_large", file=str(path))
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        log.warning("camera_info_not_json", file=str(path))
        return {}
    return data if isinstance(data, dict) else {}


def _advice(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    lines = (line.strip()[:_MAX_ADVICE_TEXT] for line in value if isinstance(line, str))
    return tuple(line for line in lines if line and line.isprintable())[:_MAX_ADVICE]


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _facts(entry: Any) -> CameraFacts:
    if not isinstance(entry, dict):
        return CameraFacts()
    verdict = entry.get("verdict")
    offset = _number(entry.get("clock_offset_s"))
    checked = _time(entry.get("checked"))
    measured = _time(entry.get("clock_measured")) or checked
    return CameraFacts(
        vendor=_text(entry.get("vendor")),
        model=_text(entry.get("model")),
        firmware=_text(entry.get("firmware")),
        clock_offset_s=offset,
        clock_measured=measured if offset is not None else None,
        verdict=cast(Verdict, verdict) if verdict in _VERDICTS else "unknown",
        advice=_advice(entry.get("advice")),
        checked=checked,
    )


def read_all_camera_facts(state_dir: Path) -> dict[str, CameraFacts]:
    """Every camera's cached facts (never raises)."""
    return {camera: _facts(entry) for camera, entry in _read_all(state_dir).items()}


def remember_camera_facts(state_dir: Path, camera: str, facts: CameraFacts) -> None:
    """Record what a check learned about `camera` (atomically; other cameras kept). Owned like
    the state directory, so a check run as root leaves a file the daemon's user can read."""
    now = datetime.now(UTC)
    entry = {**asdict(facts), "advice": list(facts.advice), "checked": now.isoformat()}
    measured = facts.clock_measured or (now if facts.clock_offset_s is not None else None)
    entry["clock_measured"] = measured.isoformat() if measured is not None else None
    _update(Path(state_dir), camera, lambda _old: entry)


def remember_clock_offset(
    state_dir: Path, camera: str, offset_s: float, *, measured: datetime
) -> None:
    """Record a new measurement of `camera`'s clock offset, keeping every other fact."""

    def merge(old: dict[str, Any]) -> dict[str, Any]:
        return {
            **old,
            "clock_offset_s": round(offset_s, 3),
            "clock_measured": measured.astimezone(UTC).isoformat(),
        }

    _update(Path(state_dir), camera, merge)


def _update(state: Path, camera: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    data = _read_all(state)
    old = data.get(camera)
    data[camera] = change(old if isinstance(old, dict) else {})
    state.mkdir(parents=True, exist_ok=True)
    owner = state.stat()
    atomic_write(
        state / CAMERA_INFO_FILE,
        json.dumps(data, indent=2, sort_keys=True),
        mode=0o640,
        owner=(owner.st_uid, owner.st_gid) if os.geteuid() == 0 else None,
    )


def read_camera_facts(state_dir: Path, camera: str) -> CameraFacts:
    """The cached facts about `camera`; all None when there are none (never raises)."""
    return _facts(_read_all(state_dir).get(camera))
