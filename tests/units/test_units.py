"""What owners and analysts type: durations, distances, points, times; and the haversine distance.

One parser (`agent.units`) for `rtcc-edge`, `rtcc-hub`, sitesim and the agent's configuration.
The tests from the parsers it replaced are here unchanged in what they assert: the hub's
(`hub/units.py`), the agent configuration's `parse_duration` and `clips`' `parse_when`.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent.units import (
    ParseError,
    duration_from_seconds,
    haversine_m,
    human_distance,
    parse_distance,
    parse_duration,
    parse_point,
    parse_since,
    parse_time,
    site_zone,
)

NOW = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
NOW_0505 = datetime(2026, 11, 22, 14, 5, tzinfo=UTC)  # the clips CLI's tests' moment

PARSERS = (parse_duration, parse_distance, parse_point, parse_time, parse_since)
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# --- from tests/hub/test_units.py and tests/config/test_config.py ---------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("10m", 600),
        ("15m", 900),
        ("2h", 7200),
        ("7d", 604800),
        ("1w", 604800),
        ("250ms", 0.25),
        (" 1.5 h ", 5400),
    ],
)
def test_durations(text: str, seconds: float) -> None:
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


# --- from tests/store/test_cli.py (`clips --from/--to`, once `parse_when`) --------------------


def test_parse_when_forms() -> None:
    assert parse_time("now", now=NOW_0505) == NOW_0505
    assert parse_time("-5m", now=NOW_0505) == NOW_0505 - timedelta(minutes=5)
    assert parse_time("-90s", now=NOW_0505) == NOW_0505 - timedelta(seconds=90)
    assert parse_time("+1.5h", now=NOW_0505) == NOW_0505 + timedelta(minutes=90)
    assert parse_time("- 2d", now=NOW_0505) == NOW_0505 - timedelta(days=2)
    assert parse_time("2026-11-22T14:05:00Z") == NOW_0505
    assert parse_time("2026-11-22T15:05:00+01:00") == NOW_0505
    assert parse_time("2026-11-22 14:05:00.250z") == NOW_0505 + timedelta(milliseconds=250)
    for bad in ("", "5m", "-5", "-5y", "2026-11-22T14:05:00", "tomorrow", "-1e9w"):
        with pytest.raises(ValueError):
            parse_time(bad, now=NOW_0505)


@given(st.datetimes(timezones=st.just(timezone(timedelta(hours=-5)))))
@example(datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))))  # past 9999 in UTC
def test_parse_when_rfc3339_round_trip(value: datetime) -> None:
    assert parse_time(value.isoformat()) == value


@given(st.text(max_size=40))
def test_parse_when_never_crashes(text: str) -> None:
    try:
        result = parse_time(text, now=NOW_0505)
    except ValueError:
        return
    assert result.tzinfo is not None


# --- `audit --since` (once `audit_cmd.parse_since`) ------------------------------------------


def test_since_forms() -> None:
    assert parse_since("7d", now=NOW) == NOW - timedelta(days=7)
    assert parse_since("12h", now=NOW) == NOW - timedelta(hours=12)
    assert parse_since("90", now=NOW) == NOW - timedelta(seconds=90)
    assert parse_since("-1h", now=NOW) == NOW - timedelta(hours=1)
    assert parse_since("now", now=NOW) == NOW
    assert parse_since("2026-01-31T00:00:00Z") == datetime(2026, 1, 31, tzinfo=UTC)
    with pytest.raises(ParseError, match="how long ago"):
        parse_since("last tuesday")
    # The owner's wall clock is not the site's UTC: a time without its offset is not guessed.
    with pytest.raises(ParseError, match="offset"):
        parse_since("2026-01-31T00:00:00")


# --- compound durations and local times in the site's zone ----------------------------------

DENVER = site_zone("America/Denver")


def test_compound_durations() -> None:
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_duration("2d 12h") == timedelta(days=2, hours=12)
    assert parse_duration("1m30s") == timedelta(seconds=90)
    assert parse_time("now-1h30m", now=NOW) == NOW - timedelta(hours=1, minutes=30)
    assert parse_since("1d12h", now=NOW) == NOW - timedelta(hours=36)
    for slip in ("1h1h", "1h30", "30m1", "h30m", "1h-30m"):
        with pytest.raises(ParseError, match="not a duration"):
            parse_duration(slip)


def test_local_time_in_the_site_zone() -> None:
    assert parse_time("2026-11-22 07:05", zone=DENVER) == datetime(2026, 11, 22, 14, 5, tzinfo=UTC)
    summer = parse_time("2026-07-01T07:05", zone=DENVER)  # daylight saving: UTC-6
    assert summer == datetime(2026, 7, 1, 13, 5, tzinfo=UTC)
    # An explicit offset wins over the site's zone.
    assert parse_time("2026-11-22T07:05:00Z", zone=DENVER) == datetime(
        2026, 11, 22, 7, 5, tzinfo=UTC
    )
    # The hour the clocks show twice (fall back) or skip (spring forward) is not guessed.
    for moment in ("2026-11-01 01:30", "2026-03-08 02:30"):
        with pytest.raises(ParseError, match="twice or not at all"):
            parse_time(moment, zone=DENVER)
    with pytest.raises(ParseError, match="unknown time zone"):
        site_zone("Mars/Olympus_Mons")


def test_the_machine_zone_keeps_its_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Denver")
    zone = site_zone()
    # Not today's fixed offset: winter and summer differ.
    assert (
        datetime(2026, 1, 1, tzinfo=zone).utcoffset()
        != datetime(2026, 7, 1, tzinfo=zone).utcoffset()
    )


@given(st.integers(0, 400), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
def test_compound_duration_round_trip(days: int, hours: int, minutes: int, seconds: int) -> None:
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    text = "".join(f"{amount}{unit}" for amount, unit in parts)
    expected = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    assert parse_duration(text) == expected


# --- properties ------------------------------------------------------------------------------

# Near misses and extremes of every form, besides arbitrary text.
_NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**30).map(str),
    st.from_regex(r"\A[0-9]{1,400}(\.[0-9]{1,20})?\Z"),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
_UNITS = st.sampled_from(["", "ms", "s", "m", "h", "d", "w", "km", "y", " ", "S"])
_NEAR_MISSES = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda lead, number, unit: f"{lead}{number}{unit}",
        st.sampled_from(["", "-", "+", "now-", "now+", " - ", "NOW-", "--"]),
        _NUMBERS,
        _UNITS,
    ),
    st.builds(lambda a, b: f"{a},{b}", _NUMBERS, _NUMBERS),
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.just(timezone(timedelta(hours=14)))).map(lambda d: d.isoformat()),
)


@given(_NEAR_MISSES)
@example("-999999999d")  # a timedelta, but not one a datetime can go back
@example("now+999999999d")
@example("9" * 400 + "w")  # float("9…9") is inf
@example("1" * 400 + "km")
@example("0001-01-01T00:00:00+01:00")  # before year 1 in UTC
@example("inf,0")
def test_only_the_documented_error_with_an_example(text: str) -> None:
    """Whatever is typed, a parser answers or raises ParseError saying what works ("e.g.")."""
    for parse in PARSERS:
        try:
            parse(text)
        except ParseError as exc:
            assert "e.g." in str(exc), str(exc)


@given(st.one_of(st.integers(), st.floats()))
@example(10**400)
@example(float("inf"))
@example(float("nan"))
def test_seconds_from_configuration_never_overflow(seconds: float) -> None:
    try:
        held = duration_from_seconds(seconds).total_seconds()
        assert held == pytest.approx(seconds, rel=1e-9, abs=1e-6)  # to the microsecond
    except ParseError as exc:
        assert "e.g." in str(exc)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(UNIT_SECONDS)))
def test_duration_round_trip(amount: int, unit: str) -> None:
    expected = timedelta(seconds=amount * UNIT_SECONDS[unit])
    assert parse_duration(f"{amount}{unit}") == expected
    for text, move in ((f"-{amount}{unit}", -expected), (f"now+{amount}{unit}", expected)):
        try:
            moment = NOW + move
        except OverflowError:  # before year 1 or after 9999: refused in words
            with pytest.raises(ParseError, match="too far"):
                parse_time(text, now=NOW)
        else:
            assert parse_time(text, now=NOW) == moment
    try:
        ago = NOW - expected
    except OverflowError:
        with pytest.raises(ParseError, match="further back"):
            parse_since(f"{amount}{unit}", now=NOW)
    else:
        assert parse_since(f"{amount}{unit}", now=NOW) == ago


@given(
    st.datetimes(
        timezones=st.builds(
            timezone,
            st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
                lambda minutes: timedelta(minutes=minutes)
            ),
        )
    )
)
def test_time_round_trip_in_any_offset(value: datetime) -> None:
    parsed = parse_time(value.isoformat())
    assert parsed == value
    assert parse_since(value.isoformat()) == value
    if 1 < parsed.year < 9999:
        assert parsed.utcoffset() == timedelta(0)


@given(
    st.floats(min_value=-90, max_value=90, allow_nan=False),
    st.floats(min_value=-180, max_value=180, allow_nan=False),
)
def test_point_round_trip(lat: float, lon: float) -> None:
    assert parse_point(f"{lat!r},{lon!r}") == (lat, lon)
    assert parse_point(f" {lat!r} , {lon!r} ") == (lat, lon)


@given(st.integers(min_value=1, max_value=10**9), st.sampled_from(["", "m", "km"]))
def test_distance_round_trip(amount: int, unit: str) -> None:
    assert parse_distance(f"{amount}{unit}") == amount * (1000 if unit == "km" else 1)


def test_zero_or_missing_units_are_refused_in_plain_words() -> None:
    with pytest.raises(ParseError, match="more than 0 m"):
        parse_distance("0m")
    with pytest.raises(ParseError, match="a sign, a number and a unit"):
        parse_time("-5")
    with pytest.raises(ParseError, match=r"e\.g\. 90s"):
        parse_duration("soon")
