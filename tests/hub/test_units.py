"""What an analyst types: durations, distances, points, times; and the haversine distance."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hub.units import (
    haversine_m,
    human_distance,
    parse_distance,
    parse_duration,
    parse_point,
    parse_time,
)

NOW = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("2h", 7200), ("7d", 604800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(("text", "metres"), [("300", 300), ("300m", 300), ("1.5km", 1500)])
def test_distances(text: str, metres: float) -> None:
    assert parse_distance(text) == metres


def test_points_and_their_errors() -> None:
    assert parse_point("35.0844,-106.6504") == (35.0844, -106.6504)
    for bad in ("35.0844", "91,0", "0,181", "a,b", "nan,0", "1,2,3"):
        with pytest.raises(ValueError, match="point"):
            parse_point(bad)


def test_times() -> None:
    assert parse_time("2026-11-22T13:05:00Z", now=NOW) == datetime(2026, 11, 22, 13, 5, tzinfo=UTC)
    assert parse_time("2026-11-22T06:05:00-07:00") == datetime(2026, 11, 22, 13, 5, tzinfo=UTC)
    assert parse_time("now", now=NOW) == NOW
    assert parse_time("-15m", now=NOW) == NOW - timedelta(minutes=15)
    assert parse_time("now-2h", now=NOW) == NOW - timedelta(hours=2)
    with pytest.raises(ValueError, match="offset"):
        parse_time("2026-11-22T13:05:00")
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday")


@given(st.text(max_size=40))
@example("86400000000000")  # more days than a timedelta holds: was an OverflowError
def test_parsers_fail_only_with_value_error(text: str) -> None:
    for parse in (parse_duration, parse_distance, parse_point, parse_time):
        with contextlib.suppress(ValueError):
            parse(text)


def test_haversine_against_known_distances() -> None:
    # One degree of latitude is 111.195 km on the mean-radius sphere.
    assert haversine_m(35.0, -106.65, 36.0, -106.65) == pytest.approx(111_195, abs=1)
    # London to Paris: the 343.5 km every flight-distance table gives.
    assert haversine_m(51.5074, -0.1278, 48.8566, 2.3522) == pytest.approx(343_500, rel=0.005)
    assert haversine_m(10, 20, 10, 20) == 0
    assert human_distance(42.4) == "42 m" and human_distance(1500) == "1.50 km"
