"""How `status` and `store status` print each camera's recording and the daemon's link.

Both take the JSON form of `agent.recorder.overview` rows (what `--json` prints), so the two
commands show the same thing in the same words.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text

_STATE_STYLE = {
    "recording": "green",
    "starting": "cyan",
    "connecting": "cyan",
    "reconnecting": "yellow",
    "offline": "red",
    "disk_full": "red",
    "store_error": "red",
    "failed": "red",
    "stopped": "dim",
}

_LINK_WORDS = {
    "not_enrolled": "not enrolled (recording only; no RTCC requests)",
    "connecting": "connecting to the RTCC",
    "connected": "connected to the RTCC",
}


def _when(text: str | None) -> str:
    if not text:
        return "-"
    value = datetime.fromisoformat(text).astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def link_line(link: dict[str, Any] | None, *, running: bool = True) -> Text:
    if not running or link is None:
        return Text.assemble("daemon: ", ("not running", "bold red"))
    words = _LINK_WORDS.get(link["state"], link["state"])
    style = "green" if link["state"] == "connected" else "yellow"
    where = f" {link['broker']}" if link.get("broker") else ""
    since = f" since {_when(link.get('since'))} UTC" if link.get("since") else ""
    return Text.assemble("link: ", (words, style), where + since)


def recorders_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="recording", caption="held: footage in the store vs the program's bar")
    table.add_column("camera", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("since (UTC)", no_wrap=True)
    table.add_column("last frame (UTC)", no_wrap=True)
    table.add_column("held", justify="right", no_wrap=True)
    table.add_column("last error", overflow="fold")
    for row in rows:
        held = Text(
            f"{row['footage_days']:.2f} of {row['bar_days']:g} d",
            style="green" if row["meets_bar"] else "yellow",
        )
        table.add_row(
            row["camera"],
            Text(row["state"], style=_STATE_STYLE.get(row["state"], "")),
            _when(row.get("since")),
            _when(row.get("last_frame")),
            held,
            Text(row.get("last_error") or ""),
        )
    return table
