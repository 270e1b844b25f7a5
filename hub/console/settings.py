"""What `rtcc-hub serve` is told about the console (flags), kept apart from the app so the
server can name it without loading the console."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tiles_url: str | None = Field(
        None,
        title="Map tiles URL template",
        description="e.g. https://tile.example.org/{z}/{x}/{y}.png; none: markers on a plain "
        "background (nothing is fetched from the internet)",
    )
    tiles_attribution: str = Field("", title="Attribution shown for the tiles")
    retention_bar_h: float = Field(72.0, gt=0, title="Program's footage bar (hours held)")
    ingest: bool = Field(True, title="Ingest the sites' events from the broker")
    ingest_id: str | None = Field(
        None, title="Persistent MQTT client id of the ingestion (one per hub process)"
    )

    @field_validator("tiles_url")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")) or "{z}" not in value:
            raise ValueError("a tiles URL looks like https://host/{z}/{x}/{y}.png")
        return value
