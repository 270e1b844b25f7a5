"""The hash-chained ledger: writing, checkpoints, and catching every kind of tampering."""

from __future__ import annotations

import itertools
import json
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict, Unpack

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.identity import DeviceKey
from agent.ledger import (
    HEAD_FILE,
    LEDGER_FILE,
    Entry,
    Kind,
    Ledger,
    LedgerError,
    build_report,
    entries,
    read_entries,
    verify_ledger,
)
from tests.support.link_service import FakeClock


@pytest.fixture(scope="module")
def key() -> DeviceKey:
    return DeviceKey.generate()


class LedgerOptions(TypedDict, total=False):
    checkpoint_every: int
    checkpoint_interval: float
    clock: Callable[[], float]


def write(
    directory: Path, key: DeviceKey, count: int = 10, **options: Unpack[LedgerOptions]
) -> Ledger:
    ledger = Ledger.open(directory, signer=key, **options)
    for index in range(count):
        ledger.append(entries.Decision(jti=f"r{index}", outcome="accepted", camera=f"cam-{index}"))
    return ledger


def lines(directory: Path) -> list[str]:
    return (directory / LEDGER_FILE).read_text().splitlines(keepends=True)


def rewrite(directory: Path, new_lines: list[str]) -> None:
    (directory / LEDGER_FILE).write_text("".join(new_lines))


def test_entries_chain_and_verify(tmp_path: Path, key: DeviceKey) -> None:
    ledger = write(tmp_path, key)
    ledger.close()
    entries = list(read_entries(tmp_path))
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    for previous, entry in itertools.pairwise(entries):
        assert entry.prev == previous.hash
    assert entries[0].prev == "0" * 64
    assert entries[-1].kind == Kind.CHECKPOINT, "closing signs the head"
    result = verify_ledger(tmp_path, key.public_jwk)
    assert result.ok, result.problems
    assert result.head is not None and result.head.seq == entries[-1].seq
    assert result.signed_seq == entries[-1].seq


def test_each_line_is_plain_json(tmp_path: Path, key: DeviceKey) -> None:
    ledger = write(tmp_path, key, 1)
    ledger.append(entries.Paused(until=datetime(2026, 1, 1, tzinfo=UTC), by="pas aujourd’hui"))
    ledger.close()
    line = json.loads(lines(tmp_path)[1])
    assert list(line) == ["seq", "time", "kind", "data", "prev", "hash"]
    assert line["data"] == {"until": "2026-01-01T00:00:00.000000Z", "by": "pas aujourd’hui"}
    assert "pas aujourd’hui" in lines(tmp_path)[1], "readable with cat, not escaped"


def test_file_modes_and_single_writer(tmp_path: Path, key: DeviceKey) -> None:
    ledger = write(tmp_path, key, 1)
    assert stat.S_IMODE((tmp_path / LEDGER_FILE).stat().st_mode) & 0o007 == 0
    with pytest.raises(LedgerError, match="in use"):
        Ledger.open(tmp_path, signer=key)
    ledger.close()
    Ledger.open(tmp_path, signer=key).close()


def test_checkpoint_every_n_entries(tmp_path: Path, key: DeviceKey) -> None:
    ledger = write(tmp_path, key, 10, checkpoint_every=4)
    kinds = [e.kind for e in read_entries(tmp_path)]
    assert kinds.count(Kind.CHECKPOINT) == 2
    assert kinds[4] == Kind.CHECKPOINT and kinds[9] == Kind.CHECKPOINT
    head = json.loads((tmp_path / HEAD_FILE).read_text())
    assert head["seq"] == 10
    ledger.close()


def test_checkpoint_after_an_interval(tmp_path: Path, key: DeviceKey) -> None:
    clock = FakeClock()
    ledger = write(tmp_path, key, 2, checkpoint_interval=60, clock=clock)
    assert ledger.checkpoint_if_due() is None
    clock.advance(timedelta(seconds=61))
    assert ledger.checkpoint_if_due() is not None
    clock.advance(timedelta(seconds=61))
    assert ledger.checkpoint_if_due() is None, "nothing new to sign"
    ledger.close()


def test_head_for_the_status_message(tmp_path: Path, key: DeviceKey) -> None:
    ledger = write(tmp_path, key, 3)
    entry = ledger.append(entries.Upload(jti="r1", bytes=10))
    assert (ledger.head.seq, ledger.head.hash) == (entry.seq, entry.hash)
    ledger.close()


def test_reopening_continues_the_chain(tmp_path: Path, key: DeviceKey) -> None:
    write(tmp_path, key, 3).close()
    ledger = write(tmp_path, key, 3)
    ledger.close()
    assert verify_ledger(tmp_path, key.public_jwk).ok


def test_a_crash_leaves_a_checkpoint_on_reopen(tmp_path: Path, key: DeviceKey) -> None:
    ledger = write(tmp_path, key, 3)
    ledger._release()  # the process died: no closing checkpoint
    reopened = Ledger.open(tmp_path, signer=key)
    assert list(read_entries(tmp_path))[-1].kind == Kind.CHECKPOINT
    reopened.close()
    assert verify_ledger(tmp_path, key.public_jwk).ok


def test_a_torn_last_line_is_recovered_and_recorded(tmp_path: Path, key: DeviceKey) -> None:
    ledger = write(tmp_path, key, 3)
    ledger._release()
    with (tmp_path / LEDGER_FILE).open("ab") as handle:
        handle.write(b'{"seq": 4, "time": "2026-')
    assert not verify_ledger(tmp_path, key.public_jwk).ok
    reopened = Ledger.open(tmp_path, signer=key)
    reopened.close()
    entries = list(read_entries(tmp_path))
    recovered = [e for e in entries if e.kind == Kind.RECOVERED]
    assert recovered and recovered[0].data["bytes"] == len(b'{"seq": 4, "time": "2026-')
    assert verify_ledger(tmp_path, key.public_jwk).ok


def test_a_damaged_last_entry_refuses_to_open(tmp_path: Path, key: DeviceKey) -> None:
    write(tmp_path, key, 3).close()
    with (tmp_path / LEDGER_FILE).open("a") as handle:
        handle.write("garbage\n")
    with pytest.raises(LedgerError, match="audit verify"):
        Ledger.open(tmp_path, signer=key)


@pytest.fixture
def sealed(tmp_path: Path, key: DeviceKey) -> Path:
    """A ledger of 13 entries: 12 decisions with a checkpoint every 6, closed cleanly."""
    write(tmp_path, key, 12, checkpoint_every=6).close()
    assert verify_ledger(tmp_path, key.public_jwk).ok
    return tmp_path


def first_problem(directory: Path, key: DeviceKey) -> tuple[str, str]:
    result = verify_ledger(directory, key.public_jwk)
    assert not result.ok
    assert result.first is not None
    return result.first.what, result.first.message


def test_edited_entry(sealed: Path, key: DeviceKey) -> None:
    content = lines(sealed)
    content[2] = content[2].replace('"outcome": "accepted"', '"outcome": "rejected"')
    rewrite(sealed, content)
    what, message = first_problem(sealed, key)
    assert what == "edited" and "entry 3 (line 3)" in message


def test_edited_entry_with_its_hash_recomputed(sealed: Path, key: DeviceKey) -> None:
    content = lines(sealed)
    entry = Entry.parse(content[2])
    data = {**entry.data, "outcome": "rejected"}
    forged = Entry(entry.seq, entry.time, entry.kind, data, entry.prev, "")
    forged = Entry(entry.seq, entry.time, entry.kind, data, entry.prev, forged.expected_hash())
    content[2] = forged.line().decode()
    rewrite(sealed, content)
    what, message = first_problem(sealed, key)
    assert what == "altered" and message.startswith("entry 3 was altered")


def test_deleted_entry(sealed: Path, key: DeviceKey) -> None:
    content = lines(sealed)
    del content[4]
    rewrite(sealed, content)
    what, message = first_problem(sealed, key)
    assert what == "removed" and "entry 5 removed" in message


def test_reordered_entries(sealed: Path, key: DeviceKey) -> None:
    content = lines(sealed)
    content[3], content[4] = content[4], content[3]
    rewrite(sealed, content)
    what, message = first_problem(sealed, key)
    assert what == "reordered" and "entry 5 (line 4)" in message


def test_cut_tail(sealed: Path, key: DeviceKey) -> None:
    rewrite(sealed, lines(sealed)[:-3])
    what, message = first_problem(sealed, key)
    assert what == "cut_tail" and "signed head is entry 14" in message


def test_cut_tail_rewritten_with_new_entries(sealed: Path, key: DeviceKey) -> None:
    content = lines(sealed)[:-2]
    rewrite(sealed, content)
    last = Entry.parse(content[-1])
    extra = [last]
    for _ in range(3):
        prev = extra[-1]
        entry = Entry(prev.seq + 1, prev.time, "decision", {"x": 1}, prev.hash, "")
        extra.append(
            Entry(entry.seq, entry.time, entry.kind, entry.data, entry.prev, entry.expected_hash())
        )
    rewrite(sealed, content + [e.line().decode() for e in extra[1:]])
    what, _message = first_problem(sealed, key)
    assert what == "cut_tail"


def test_renumbered_chain_is_caught_by_the_checkpoints(sealed: Path, key: DeviceKey) -> None:
    """Delete an entry and rebuild every later seq and hash: only signatures can tell."""
    entries = [Entry.parse(line) for line in lines(sealed)]
    del entries[2]
    rebuilt: list[Entry] = []
    prev = "0" * 64
    for seq, entry in enumerate(entries, start=1):
        draft = Entry(seq, entry.time, entry.kind, entry.data, prev, "")
        fixed = Entry(seq, entry.time, entry.kind, entry.data, prev, draft.expected_hash())
        rebuilt.append(fixed)
        prev = fixed.hash
    rewrite(sealed, [e.line().decode() for e in rebuilt])
    what, _message = first_problem(sealed, key)
    assert what == "bad_checkpoint"


def test_checkpoint_by_another_key(sealed: Path, key: DeviceKey) -> None:
    other = DeviceKey.generate()
    what, message = first_problem(sealed, other)
    assert what == "bad_checkpoint" and "signature is not valid" in message


def test_head_file_removed_or_forged(sealed: Path, key: DeviceKey) -> None:
    head = json.loads((sealed / HEAD_FILE).read_text())
    (sealed / HEAD_FILE).write_text(json.dumps({**head, "seq": head["seq"] + 5}))
    assert first_problem(sealed, key)[0] == "bad_head"
    (sealed / HEAD_FILE).unlink()
    assert first_problem(sealed, key)[0] == "bad_head"


def test_garbage_line(sealed: Path, key: DeviceKey) -> None:
    content = lines(sealed)
    content.insert(3, "this is not an entry\n")
    rewrite(sealed, content)
    what, message = first_problem(sealed, key)
    assert what == "unreadable" and "line 4" in message


def reader_entries(raw: bytes) -> list[Entry]:
    """Entries split as the reader splits them: on newlines only. (`bytes.splitlines()` also
    splits on a carriage return, which inside a line is JSON white space, not a line end.)"""
    return [Entry.parse(line) for line in raw.split(b"\n")[:-1]]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    index=st.integers(min_value=0, max_value=12),
    position=st.integers(min_value=0, max_value=400),
    byte=st.integers(min_value=0, max_value=255),
)
@example(index=3, position=7, byte=0x0D)  # the space after `"seq":` became a carriage return
def test_any_changed_byte_is_caught(
    tmp_path_factory: pytest.TempPathFactory, key: DeviceKey, index: int, position: int, byte: int
) -> None:
    directory = tmp_path_factory.mktemp("ledger")
    write(directory, key, 12, checkpoint_every=6).close()
    raw = bytearray((directory / LEDGER_FILE).read_bytes())
    original = reader_entries(bytes(raw))
    starts = [0, *[i + 1 for i, b in enumerate(raw) if b == 0x0A][:-1]]
    offset = min(starts[index] + position, len(raw) - 1)
    raw[offset] = byte
    try:
        if reader_entries(bytes(raw)) == original:
            # The same entries (a space became a tab or a carriage return, both JSON white
            # space): nothing was tampered with.
            return
    except ValueError:
        pass
    (directory / LEDGER_FILE).write_bytes(bytes(raw))
    result = verify_ledger(directory, key.public_jwk)
    assert not result.ok


def test_report_counts(tmp_path: Path, key: DeviceKey) -> None:
    ledger = Ledger.open(tmp_path, signer=key)
    rtcc, other = "https://rtcc.test", "https://county.test"
    for jti, issuer, camera, outcome in (
        ("a", rtcc, "front", "accepted"),
        ("b", rtcc, "lot", "pending_approval"),
        ("c", other, "lot", "pending_approval"),
        ("d", other, "stock", "rejected"),
    ):
        received = {"jti": jti, "issuer": issuer, "camera": camera, "cmd": "clip"}
        ledger.append(
            entries.RequestReceived.model_validate(
                {**received, "verified": True, "bytes": 500, "code": None}
            )
        )
        code = "not_shared" if outcome == "rejected" else None
        ledger.append(
            entries.Decision.model_validate({**received, "outcome": outcome, "code": code})
        )
    ledger.append(
        entries.RequestReceived(jti="e", verified=False, issuer=None, bytes=9, code="bad_signature")
    )
    ledger.append(entries.Unparseable(bytes=3, sha256="0" * 64, code="malformed", message="x"))
    ledger.append(entries.Approval(jti="b", issuer=rtcc, camera="lot", cmd="clip", by="owner"))
    ledger.append(entries.Denial(jti="c", issuer=other, camera="lot", cmd="clip", by="owner"))
    ledger.append(entries.Upload(jti="a", issuer=rtcc, camera="front", bytes=1000))
    ledger.append(entries.Upload(jti="b", issuer=rtcc, camera="lot", bytes=500))
    ledger.append(
        entries.LiveSession(jti="f", issuer=rtcc, camera="front", seconds=90, reason="max_seconds")
    )
    ledger.append(
        entries.RequestClosed(
            jti="g", issuer=rtcc, camera="lot", state="rejected", code="approval_expired"
        )
    )
    ledger.close()
    report = build_report(read_entries(tmp_path))
    total = report.total
    assert (total.received, total.automatic, total.approved, total.denied) == (5, 1, 1, 1)
    assert (total.rejected, total.expired, total.bytes_uploaded) == (2, 1, 1500)
    assert total.live_minutes == 1.5
    assert report.unparseable == 1
    assert report.by_agency[rtcc].received == 2 and report.by_agency[other].denied == 1
    assert report.by_agency["(unverified)"].rejected == 1
    assert report.by_camera["lot"].approved == 1 and report.by_camera["lot"].denied == 1
    assert report.by_camera["front"].bytes_uploaded == 1000
    assert dict(report.rejected_by_code) == {"bad_signature": 1, "not_shared": 1}
    assert "(unverified)" not in report.by_camera
    future = datetime.now(UTC) + timedelta(days=1)
    assert build_report(read_entries(tmp_path), since=future).total.received == 0


def test_text_that_is_not_unicode_is_written_escaped(tmp_path: Path, key: DeviceKey) -> None:
    """Defence in depth: the verifier refuses lone surrogates, but an entry carrying one must
    still be written (escaped) rather than raise and lose the record."""
    ledger = write(tmp_path, key, 1)
    ledger.append(
        entries.Unparseable(message="kid 'k\ud83d'", bytes=3, sha256="0" * 64, code="malformed")
    )
    ledger.close()
    assert "\\ud83d" in lines(tmp_path)[1]
    assert list(read_entries(tmp_path))[1].data["message"] == "kid 'k\ud83d'"
    assert verify_ledger(tmp_path, key.public_jwk).ok
