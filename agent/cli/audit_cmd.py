"""`rtcc-edge audit [--since 7d] [--json]`, `audit verify [--witness HEAD]`, `audit report`.

These read the ledger files directly (`<state_dir>/ledger/`), so they work whether or not the
daemon runs. `verify` needs the device key (`<state_dir>/device.key`) to check the signatures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from rich.table import Table

from agent.cli.common import console, err_console, load_or_report, print_json
from agent.identity import DeviceKey, DeviceKeyError, JwsError, device_key_path
from agent.ledger import (
    Entry,
    LedgerFormatError,
    LedgerHead,
    Tally,
    build_report,
    read_entries,
    verify_ledger,
)
from agent.ledger.verify import signed_head_claims
from agent.units import parse_since

LEDGER_DIR = "ledger"
_HIDDEN = {"jws", "head_hash", "prev"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "audit", help="the ledger of every request, decision, upload and live session"
    )
    parser.add_argument("--since", metavar="WHEN", help="e.g. 7d, 12h, or an RFC 3339 time")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--verify", action="store_true", help="same as `audit verify`")
    parser.set_defaults(func=run_list)
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    verify = sub.add_parser("verify", help="check the chain, checkpoints and signed head")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.add_argument(
        "--witness",
        metavar="HEAD",
        help="a ledger head known outside the site, which the ledger must still hold: the "
        "site's signed status as the RTCC keeps it (a JWS, or a file holding it), a copy of "
        "head.json, or SEQ:HASH",
    )
    verify.set_defaults(func=run_verify)
    report = sub.add_parser("report", help="the owner's transparency report")
    report.add_argument("--since", metavar="WHEN", default="30d", help="default: 30d")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.set_defaults(func=run_report)


def _ledger_and_since(args: argparse.Namespace) -> tuple[Path, datetime | None] | None:
    """The ledger directory and `--since` (in the site's time zone when it is a local time);
    None once the problem is printed."""
    config = load_or_report(args)
    if config is None:
        return None
    ok, since = _since_or_report(args, config.site.zone())
    return (Path(config.state_dir) / LEDGER_DIR, since) if ok else None


def _since_or_report(args: argparse.Namespace, zone: tzinfo) -> tuple[bool, datetime | None]:
    try:
        return True, None if args.since is None else parse_since(args.since, zone=zone)
    except ValueError as exc:
        err_console.print(f"--since: {exc}", highlight=False)
        return False, None


def _summary(entry: Entry) -> str:
    parts = []
    for name, value in entry.data.items():
        if name in _HIDDEN or value is None or value == "":
            continue
        text = str(value)
        parts.append(f"{name}={text if len(text) <= 60 else text[:59] + '…'}")
    return " ".join(parts)


def run_list(args: argparse.Namespace) -> int:
    if args.verify:
        return run_verify(args)
    found = _ledger_and_since(args)
    if found is None:
        return 2
    directory, since = found
    try:
        entries = list(read_entries(directory, since=since))
    except LedgerFormatError as exc:
        err_console.print(f"{exc}; run `rtcc-edge audit verify`", highlight=False)
        return 1
    if args.json:
        print_json([entry.to_json() for entry in entries])
        return 0
    table = Table(title=f"ledger {directory}", show_lines=False)
    for column in ("seq", "time (UTC)", "kind", "details"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(str(entry.seq), entry.time[:19], entry.kind, _summary(entry))
    console.print(table)
    if not entries:
        console.print("no entries" + (f" since {since.isoformat()}" if since else ""))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return 2
    directory = Path(config.state_dir) / LEDGER_DIR
    state_dir = Path(config.state_dir)
    try:
        key = DeviceKey.load(device_key_path(state_dir))
        # Keys retired by a rotation (docs/operations.md) signed the older checkpoints.
        retired = [
            DeviceKey.load(path).public_jwk
            for path in sorted(state_dir.glob(f"{device_key_path(state_dir).name}.retired-*"))
        ]
    except DeviceKeyError as exc:
        err_console.print(f"cannot check signatures without the device key: {exc}")
        return 2
    ring = [key.public_jwk, *retired]
    witness: LedgerHead | None = None
    if getattr(args, "witness", None):
        try:
            witness = parse_witness(args.witness, ring)
        except WitnessError as exc:
            err_console.print(f"--witness: {exc}", highlight=False, markup=False)
            return 2
    result = verify_ledger(directory, ring, witness=witness)
    if args.json:
        print_json(
            {
                "ok": result.ok,
                "entries": result.entries,
                "checkpoints": result.checkpoints,
                "head": {"seq": result.head.seq, "hash": result.head.hash} if result.head else None,
                "signed_seq": result.signed_seq,
                "problems": [
                    {"what": p.what, "message": p.message, "line": p.line, "seq": p.seq}
                    for p in result.problems
                ],
            }
        )
        return 0 if result.ok else 1
    if result.ok:
        head = f", head entry {result.head.seq} {result.head.hash[:16]}…" if result.head else ""
        console.print(
            f"ledger OK: {result.entries} entries, {result.checkpoints} signed checkpoints{head}",
            highlight=False,
        )
        return 0
    first = result.first
    assert first is not None
    err_console.print(f"[bold red]ledger NOT OK:[/] {first.message}", highlight=False)
    for problem in result.problems[1:]:
        err_console.print(f"  also: {problem.message}", highlight=False, markup=False)
    return 1


class WitnessError(ValueError):
    """The witness given to `audit verify` cannot be used (says why)."""


_HEAD_TEXT = re.compile(r"(\d+):([0-9a-f]{64})")


def parse_witness(value: str, ring: list[dict[str, Any]]) -> LedgerHead:
    """A head from `SEQ:HASH`, a device-signed JWS (the signed status, a signed head), a
    head.json copy, or a file holding one of them."""
    text = value
    path = Path(value)
    is_file = False
    with contextlib.suppress(OSError, ValueError):  # a JWS is not a file name
        is_file = path.is_file()
    if "/" in value or path.suffix in (".json", ".jwt", ".txt") or is_file:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise WitnessError(f"cannot read {value}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise WitnessError(f"{value} is not text") from exc
    text = text.strip()
    plain = _HEAD_TEXT.fullmatch(text)
    if plain is not None:
        return LedgerHead(int(plain.group(1)), plain.group(2))
    token = text
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise WitnessError(f"not JSON: {exc}") from exc
        jws = obj.get("jws") if isinstance(obj, dict) else None
        if not isinstance(jws, str):
            raise WitnessError("a JSON witness is a copy of head.json, with its jws")
        token = jws
    if token.count(".") != 2:
        raise WitnessError("give SEQ:HASH, a signed status or head (JWS), or a file holding one")
    try:
        return signed_head_claims(token, ring)
    except JwsError as exc:
        raise WitnessError(f"not a ledger head signed by this site's device key: {exc}") from exc


def _tally_row(name: str, tally: Tally) -> list[str]:
    return [
        name,
        str(tally.received),
        str(tally.automatic),
        str(tally.approved),
        str(tally.denied),
        str(tally.expired),
        str(tally.rejected),
        f"{tally.live_minutes:.1f}",
        f"{tally.bytes_uploaded:,}",
    ]


def _tally_table(title: str, first: str, rows: dict[str, Tally], total: Tally | None) -> Table:
    table = Table(title=title, caption="auto: fulfilled without the owner (integrated cameras)")
    table.add_column(first, no_wrap=True)
    for column in ("received", "auto", "approved", "denied", "expired", "rejected", "live min"):
        table.add_column(column, justify="right")
    table.add_column("bytes out", justify="right")
    for name, tally in sorted(rows.items()):
        table.add_row(*_tally_row(name, tally))
    if total is not None:
        table.add_row(*_tally_row("all", total), style="bold")
    return table


def run_report(args: argparse.Namespace) -> int:
    found = _ledger_and_since(args)
    if found is None:
        return 2
    directory, since = found
    until = datetime.now(UTC)
    try:
        report = build_report(read_entries(directory, since=since), since=since, until=until)
    except LedgerFormatError as exc:
        err_console.print(f"{exc}; run `rtcc-edge audit verify`", highlight=False)
        return 1
    if args.json:
        print_json(report.to_json())
        return 0
    period = f"since {since:%Y-%m-%d %H:%M} UTC" if since else "all time"
    console.print(f"[bold]Transparency report[/], {period}", highlight=False)
    console.print(_tally_table("per agency", "agency", report.by_agency, report.total))
    console.print(_tally_table("per camera", "camera", report.by_camera, None))
    extra: list[Any] = []
    if report.rejected_by_code:
        codes = ", ".join(f"{code} {n}" for code, n in sorted(report.rejected_by_code.items()))
        extra.append(f"rejected by code: {codes}")
    extra.append(f"unreadable payloads: {report.unparseable}")
    for line in extra:
        console.print(line, highlight=False)
    return 0
