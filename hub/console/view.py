"""What every page's template gets, and the filters that put numbers into plain words."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from markupsafe import Markup, escape

from agent.units import human_distance
from hub.console.app import console_of
from hub.console.auth import WHO

NAV = (
    ("map", "/", "Map"),
    ("incidents", "/incidents", "Incidents"),
    ("evidence", "/evidence", "Evidence"),
    ("wall", "/wall", "Live wall"),
    ("fleet", "/fleet", "Fleet health"),
    ("audit", "/audit", "Audit log"),
)


def base_context(request: web.Request) -> dict[str, Any]:
    console = console_of(request)
    who = request.get(WHO)
    ingestor = console.ingestor
    if ingestor is None:
        link = "none"
    elif ingestor.connected:
        link = "up"
    else:
        link = "down"
    return {
        "who": who,
        "csrf": who.csrf if who is not None else "",
        "nav": [
            item
            for item in NAV
            if item[0] != "audit" or (who is not None and who.can("supervisor"))
        ],
        "problem": console.problem,
        "link": link,
        "link_error": ingestor.last_error if ingestor is not None else None,
        "active": "",
        "asset": lambda name: str(request.app.router["console_static"].url_for(filename=name)),
    }


def when(value: datetime | None) -> Markup:
    """A time as UTC text in a <time> element; the page's script shows it in local time."""
    if value is None:
        return Markup("—")
    moment = value.astimezone(UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" data-local>{}</time>').format(moment.isoformat(), text)


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    if seconds < 0:
        return "just now"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def held(hours: float | None) -> str:
    """Footage held, in the unit an analyst thinks in."""
    if hours is None:
        return "—"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def size(value: int | None) -> str:
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GB"


def distance(value: float | None) -> str:
    return "—" if value is None else human_distance(value)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}:{secs:02d}" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def yes_no(value: bool | None) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def nl(value: str) -> Markup:
    return Markup("<br>").join(escape(line) for line in value.splitlines())


FILTERS: dict[str, Callable[..., Any]] = {
    "when": when,
    "ago": ago,
    "held": held,
    "size": size,
    "distance": distance,
    "duration": duration,
    "yes_no": yes_no,
    "nl": nl,
}
