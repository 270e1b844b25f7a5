"""Request times are RFC 3339 text (DESIGN §4.2): a number is not read as Unix seconds."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from agent.wire.requests import ClipRequest, SnapshotRequest, parse_request_claims


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "cmd": "clip",
        "jti": str(uuid.uuid4()),
        "iss": "https://rtcc.example.gov",
        "aud": "site-1",
        "iat": 1_780_000_000,
        "exp": 1_780_000_300,
        "camera": "front-door",
        "case": "2026-000123",
        "start": "2026-05-01T14:03:00Z",
        "end": "2026-05-01T16:04:00+02:00",
        "upload": {"url": "https://uploads.rtcc.test/x"},
    }
    claims.update(changes)
    return claims


def test_text_times_with_an_offset_are_accepted() -> None:
    request = parse_request_claims(_claims())
    assert isinstance(request, ClipRequest)
    assert request.start.isoformat() == "2026-05-01T14:03:00+00:00"


@pytest.mark.parametrize("field", ["start", "end"])
@pytest.mark.parametrize("value", [1_746_108_180, 1_746_108_180.5, True, None, ["x"]])
def test_a_clip_time_that_is_not_text_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match="RFC 3339 date-time string"):
        parse_request_claims(_claims(**{field: value}))


def test_a_snapshot_time_that_is_a_number_is_refused() -> None:
    claims = _claims(cmd="snapshot", at=1_746_108_180)
    for name in ("start", "end", "upload", "case"):
        claims.pop(name)
    claims["upload"] = {"url": "https://uploads.rtcc.test/x"}
    claims["case"] = "2026-000123"
    with pytest.raises(ValidationError, match="RFC 3339 date-time string"):
        parse_request_claims(claims)
    claims["at"] = "2026-05-01T14:03:00Z"
    assert isinstance(parse_request_claims(claims), SnapshotRequest)
