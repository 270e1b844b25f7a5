"""Firmware version parsing and comparison: real strings from advisories, and properties."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.compat.versions import (
    MAX_VERSION_LENGTH,
    VERSION_STYLES,
    FirmwareVersion,
    VersionStyle,
    compare_to_release,
    compare_versions,
    parse_version,
)

# (style, raw, line, numbers, build_date, build) — strings as published by vendors and CVEs.
EXAMPLES = [
    ("hikvision", "V5.5.0 build 170725", None, (5, 5, 0), date(2017, 7, 25), None),
    ("hikvision", "V5.4.0 Build 160401", None, (5, 4, 0), date(2016, 4, 1), None),
    ("hikvision", "5.2.5 build 210511", None, (5, 2, 5), date(2021, 5, 11), None),
    ("hikvision", "V5.6.3", None, (5, 6, 3), None, None),
    (
        "dahua",
        "V2.800.0000000.25.R, Build Date: 2020-08-20",
        "2.800",
        (0, 25),
        date(2020, 8, 20),
        None,
    ),
    ("dahua", "3.140.0000000.10.R,build:2024-01-16", "3.140", (0, 10), date(2024, 1, 16), None),
    ("dahua", "V2.420.AC00.16.R.20160909", "2.420|AC00", (16,), date(2016, 9, 9), None),
    ("dahua", "2.623.00AC004.0.R.200316", "2.623|00AC004", (0,), date(2020, 3, 16), None),
    ("dahua", "2.800.0000000.8.R.20241111", "2.800", (0, 8), date(2024, 11, 11), None),
    ("dotted", "10.12.114", None, (10, 12, 114), None, None),
    ("dotted", "4.75.62", None, (4, 75, 62), None, None),
    ("tplink", "1.1.16 Build 211209 Rel. 37726n", None, (1, 1, 16), date(2021, 12, 9), 37726),
    ("tplink", "V5_1.4.6 Build 260709 Rel.27675n", "V5", (1, 4, 6), date(2026, 7, 9), 27675),
    ("tplink", "3.1.0_Build_250820_Rel.57668n", None, (3, 1, 0), date(2025, 8, 20), 57668),
    ("tplink", "1.3.6", None, (1, 3, 6), None, None),
    ("reolink", "v3.0.0.136_20121102", None, (3, 0, 0, 136), date(2020, 12, 11), None),
    ("reolink", "v3.0.0.2356_23062004", None, (3, 0, 0, 2356), date(2023, 6, 20), None),
    ("uniview", "DIPC-B1216.5.7.230109", "DIPC-B1216", (5, 7), date(2023, 1, 9), None),
    (
        "uniview",
        "IPC_G6103-B6103.16.10.B25.201218",
        "IPC_G6103-B6103",
        (16, 10),
        date(2020, 12, 18),
        25,
    ),
    ("milesight", "51.7.0.77-r12", "51", (7, 0, 77), None, 12),
    ("milesight", "CQ_63.8.0.5-r1", "CQ_63", (8, 0, 5), None, 1),
    ("bosch", "7.80 B128", None, (7, 80), None, 128),
    ("bosch", "7.80.0128", None, (7, 80), None, 128),
    ("bosch", "7.62", None, (7, 62), None, None),
    ("vivotek", "VVTK-0100d", None, (100, 4), None, None),
    ("vivotek", "FD8136-VVTK-0301a", None, (301, 1), None, None),
]


@pytest.mark.parametrize(("style", "raw", "line", "numbers", "built", "build"), EXAMPLES)
def test_parses_published_firmware_strings(
    style: VersionStyle,
    raw: str,
    line: str | None,
    numbers: tuple[int, ...],
    built: date | None,
    build: int | None,
) -> None:
    parsed = parse_version(raw, style)
    assert parsed is not None
    assert (parsed.line, parsed.numbers, parsed.build_date, parsed.build) == (
        line,
        numbers,
        built,
        build,
    )
    assert parsed.raw == raw.strip()


@pytest.mark.parametrize(
    ("style", "raw"),
    [
        ("hikvision", ""),
        ("hikvision", "   "),
        ("hikvision", "V5.5.0 build 171345"),  # month 13
        ("hikvision", "V5.5.0 build 17072"),
        ("hikvision", "2.800.0000000.25.R"),
        ("dahua", "V5.5.0 build 170725"),
        ("dahua", "2.800.0000000.25.R.20201340"),
        ("dahua", "2.800.0000000.25.R.200820, Build Date: 2020-08-20"),  # two dates
        ("dotted", "10.12.114-beta"),
        ("reolink", "v3.0.0.136"),
        ("uniview", "5.7.230109"),
        ("milesight", "version 51"),
        ("bosch", "seven"),
        ("vivotek", "0100d"),
        ("dotted", "1." + "1." * 80 + "1"),
        ("dotted", "1.2\x00"),
        ("hikvision", "V5.5.0\nbuild 170725"),
    ],
)
def test_rejects_what_does_not_fit_the_style(style: VersionStyle, raw: str) -> None:
    assert parse_version(raw, style) is None


def test_rejects_overlong_strings() -> None:
    assert parse_version("1" * (MAX_VERSION_LENGTH + 1), "dotted") is None


def _v(raw: str, style: VersionStyle) -> FirmwareVersion:
    parsed = parse_version(raw, style)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    ("style", "older", "newer"),
    [
        ("hikvision", "V5.4.0 build 160401", "V5.4.0 build 160530"),
        ("hikvision", "V5.5.113 build 210317", "V5.7.1 build 211009"),
        ("hikvision", "V5.5.0 build 170725", "V5.5.800 build 210628"),
        ("dotted", "8.20", "8.20.1"),
        ("dotted", "9.80.3", "10.12.114"),
        ("tplink", "1.1.15 Build 211010 Rel. 1", "1.1.16 Build 211209 Rel. 37726n"),
        ("tplink", "3.1.0_Build_250820_Rel.57668n", "3.1.0_Build_250820_Rel.58873n"),
        ("reolink", "v3.0.0.136_20121102", "v3.0.0.2356_23062004"),
        ("milesight", "51.7.0.77-r12", "51.7.0.77-r13"),
        ("bosch", "7.72.0040", "7.80 B128"),
        ("dahua", "2.800.0000000.3.R.20240101", "2.800.0000000.8.R.20241111"),
    ],
)
def test_orders_releases(style: VersionStyle, older: str, newer: str) -> None:
    a, b = _v(older, style), _v(newer, style)
    assert compare_versions(a, b) == -1
    assert compare_versions(b, a) == 1
    assert compare_versions(a, a) == 0


def test_pads_missing_components_with_zero() -> None:
    assert compare_versions(_v("5.5", "dotted"), _v("5.5.0", "dotted")) == 0


def test_different_firmware_lines_are_not_ordered() -> None:
    assert compare_versions(_v("51.7.0.77", "milesight"), _v("45.7.0.79", "milesight")) is None
    a, b = _v("DIPC-B1216.5.7.230109", "uniview"), _v("DIPC-B1213.6.5.230215", "uniview")
    assert compare_versions(a, b) is None


def test_same_numbers_with_one_build_missing_is_undecidable() -> None:
    assert (
        compare_versions(_v("V5.4.0 build 160401", "hikvision"), _v("V5.4.0", "hikvision")) is None
    )
    assert compare_versions(_v("7.80", "bosch"), _v("7.80 B128", "bosch")) is None


def test_build_dates_compare_across_lines() -> None:
    a = _v("V2.800.0000000.25.R, Build Date: 2020-08-20", "dahua")
    b = _v("3.140.0000000.10.R,build:2024-01-16", "dahua")
    assert compare_versions(a, b) is None
    assert compare_versions(a, b, by="build_date") == -1
    assert compare_versions(a, _v("4.75.62", "dotted"), by="build_date") is None


def test_a_release_without_build_names_every_build() -> None:
    release = _v("1.1.15", "tplink")
    assert compare_to_release(_v("1.1.15 Build 211010 Rel. 1", "tplink"), release) == 0
    assert compare_to_release(_v("1.1.14", "tplink"), release) == -1
    built = _v("1.1.16 Build 211209 Rel. 37726n", "tplink")
    assert compare_to_release(_v("1.1.16", "tplink"), built) is None
    assert compare_to_release(_v("V5_1.1.15", "tplink"), release) is None


# --- properties -----------------------------------------------------------------------------

SAFE_TEXT = st.text(max_size=200)


@settings(max_examples=300)
@given(raw=SAFE_TEXT, style=st.sampled_from(VERSION_STYLES))
def test_parser_never_raises(raw: str, style: VersionStyle) -> None:
    parsed = parse_version(raw, style)
    if parsed is not None:
        assert parsed.style == style
        assert parsed.numbers


def _yymmdd(day: date) -> str:
    return day.strftime("%y%m%d")


DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
NUMS = st.lists(st.integers(0, 999), min_size=2, max_size=4)


@st.composite
def hikvision_versions(draw: st.DrawFn) -> str:
    numbers = ".".join(map(str, draw(NUMS)))
    if draw(st.booleans()):
        return f"V{numbers} build {_yymmdd(draw(DAYS))}"
    return f"V{numbers}"


@st.composite
def tplink_versions(draw: st.DrawFn) -> str:
    numbers = ".".join(map(str, draw(NUMS)))
    build = f" Build {_yymmdd(draw(DAYS))}" if draw(st.booleans()) else ""
    rel = f" Rel. {draw(st.integers(0, 99999))}n" if build and draw(st.booleans()) else ""
    return f"{numbers}{build}{rel}"


@st.composite
def milesight_versions(draw: st.DrawFn) -> str:
    line = draw(st.sampled_from(["45", "51", "63"]))
    numbers = ".".join(map(str, draw(st.lists(st.integers(0, 99), min_size=3, max_size=3))))
    rev = f"-r{draw(st.integers(0, 20))}" if draw(st.booleans()) else ""
    return f"{line}.{numbers}{rev}"


def _styled(
    style: VersionStyle, versions: st.SearchStrategy[str]
) -> st.SearchStrategy[tuple[VersionStyle, str]]:
    return st.tuples(st.just(style), versions)


STYLED = st.one_of(
    _styled("hikvision", hikvision_versions()),
    _styled("tplink", tplink_versions()),
    _styled("milesight", milesight_versions()),
)


@settings(max_examples=200)
@given(data=st.data())
def test_ordering_is_consistent(data: st.DataObject) -> None:
    style, first = data.draw(STYLED)
    raws = [first] + [
        data.draw(
            {"hikvision": hikvision_versions(), "tplink": tplink_versions()}.get(
                style, milesight_versions()
            )
        )
        for _ in range(2)
    ]
    a, b, c = (_v(raw, style) for raw in raws)
    for x, y in ((a, b), (b, c), (a, c)):
        forward, backward = compare_versions(x, y), compare_versions(y, x)
        assert (forward is None) == (backward is None)
        if forward is not None and backward is not None:
            assert forward == -backward
    assert compare_versions(a, a) == 0
    ab, bc, ac = compare_versions(a, b), compare_versions(b, c), compare_versions(a, c)
    if ab is not None and bc is not None and ab == bc and ab != 0:
        assert ac == ab  # transitive whenever all three are decidable
