"""Checking a ledger: the chain, every checkpoint signature, and the signed head.

Per line, in this order: it parses as an entry (`unreadable`); its hash matches its content
(`edited`); its seq follows the previous one (`removed` when the missing entries appear nowhere
in the file, `reordered` when they appear elsewhere or this one repeats); its `prev` is the
previous entry's hash (`altered`: the previous entry was changed and its hash recomputed). A
checkpoint's signature must verify with the device key and vouch for the entry before it
(`bad_checkpoint`). Finally the signed head (`head.json`) must verify and name an entry that is
in the file with that hash (`cut_tail` when the file ends before it). After a problem the check
carries on from the offending entry, so one damaged spot yields one problem, not a cascade.

A **witness** is a head that left the site: the `ledger_seq`/`ledger_hash` of a signed status
the RTCC keeps, or a copy of `head.json` kept elsewhere. Entries cut from the end before the
next checkpoint (and `head.json` with them) are invisible to the file alone; given a witness,
the ledger must still hold that entry with that hash (`cut_tail` otherwise).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent.identity import JwsError, verify_device_jws
from agent.ledger.chain import (
    GENESIS,
    HEAD_FILE,
    LEDGER_FILE,
    Entry,
    Kind,
    LedgerFormatError,
    LedgerHead,
    SignedHead,
    iter_lines,
)

ProblemKind = Literal[
    "unreadable",
    "incomplete",
    "edited",
    "removed",
    "reordered",
    "altered",
    "bad_checkpoint",
    "bad_head",
    "cut_tail",
]


@dataclass(frozen=True)
class Problem:
    what: ProblemKind
    message: str
    line: int | None = None
    seq: int | None = None

    def __str__(self) -> str:
        return self.message


@dataclass
class Verification:
    entries: int = 0
    checkpoints: int = 0
    head: LedgerHead | None = None
    signed_seq: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


# The device's public keys: the current one, and any retired before it (a rotation keeps the
# old key, whose checkpoints must still verify). One JWK is accepted as a one-key ring.
KeyRing = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def _keys(ring: KeyRing) -> list[Mapping[str, Any]]:
    return [ring] if isinstance(ring, Mapping) else list(ring)


def _signed_claims(token: Any, ring: KeyRing) -> tuple[int, str]:
    if not isinstance(token, str):
        raise JwsError("no signature")
    errors: list[str] = []
    for jwk in _keys(ring):
        try:
            claims = verify_device_jws(token, jwk)
            break
        except JwsError as exc:
            errors.append(str(exc))
    else:
        raise JwsError("; ".join(dict.fromkeys(errors)) or "no device key to check it with")
    seq, digest = claims.get("ledger_seq"), claims.get("ledger_hash")
    if not isinstance(seq, int) or not isinstance(digest, str):
        raise JwsError("the signature does not name a ledger head")
    return seq, digest


def _seq_problem(entry: Entry, number: int, prev_seq: int, seen: Counter[int]) -> Problem:
    where = f"entry {entry.seq} (line {number})"
    if entry.seq > prev_seq + 1:
        missing = range(prev_seq + 1, entry.seq)
        if any(seen[seq] for seq in missing):
            return Problem(
                "reordered",
                f"{where} is out of order: entry {prev_seq + 1} should come before it",
                number,
                entry.seq,
            )
        span = str(prev_seq + 1) if len(missing) == 1 else f"{prev_seq + 1}-{entry.seq - 1}"
        return Problem(
            "removed", f"{where} follows entry {prev_seq}: entry {span} removed", number, entry.seq
        )
    what = "repeated" if seen[entry.seq] > 1 else "out of order"
    return Problem("reordered", f"{where} comes after entry {prev_seq}: {what}", number, entry.seq)


def _checkpoint_problem(entry: Entry, number: int, jwk: KeyRing) -> Problem | None:
    where = f"entry {entry.seq} (line {number})"
    try:
        seq, digest = _signed_claims(entry.data.get("jws"), jwk)
    except JwsError as exc:
        return Problem(
            "bad_checkpoint",
            f"{where}: checkpoint signature is not valid: {exc}",
            number,
            entry.seq,
        )
    vouched = (entry.data.get("head_seq"), entry.data.get("head_hash"))
    if (seq, digest) != vouched or (seq, digest) != (entry.seq - 1, entry.prev):
        return Problem(
            "bad_checkpoint",
            f"{where}: checkpoint vouches for entry {seq}, not for the entry before it",
            number,
            entry.seq,
        )
    return None


def signed_head_claims(token: str, jwk: KeyRing) -> LedgerHead:
    """The ledger head a device-signed JWS names (a signed status or a signed head); JwsError
    if the signature does not verify or it names no head."""
    seq, digest = _signed_claims(token, jwk)
    return LedgerHead(seq, digest)


def verify_ledger(
    directory: Path, jwk: KeyRing, *, witness: LedgerHead | None = None
) -> Verification:
    """Check the ledger in `directory` against the device's public JWK (`jwk`), or a list of
    them: the current key and those retired by a rotation. `witness`: a head known outside the
    site, which the ledger must still contain."""
    path = directory / LEDGER_FILE
    result = Verification()
    seen: Counter[int] = Counter()
    if path.exists():
        for _number, line, _complete in iter_lines(path):
            try:
                seen[Entry.parse(line).seq] += 1
            except LedgerFormatError:
                continue

    signed: SignedHead | None = None
    try:
        signed = SignedHead.load(directory / HEAD_FILE)
    except LedgerFormatError as exc:
        result.problems.append(Problem("bad_head", f"{HEAD_FILE}: {exc}"))
    signed_hash_in_file: str | None = None
    witnessed_hash_in_file: str | None = None

    prev_seq, prev_hash = 0, GENESIS
    if path.exists():
        for number, line, complete in iter_lines(path):
            if not complete:
                result.problems.append(
                    Problem(
                        "incomplete",
                        f"line {number}: incomplete last line (written during a crash, or cut)",
                        number,
                    )
                )
                break
            try:
                entry = Entry.parse(line)
            except LedgerFormatError as exc:
                result.problems.append(
                    Problem("unreadable", f"line {number}: not a ledger entry ({exc})", number)
                )
                continue
            result.entries += 1
            problem: Problem | None = None
            if entry.expected_hash() != entry.hash:
                problem = Problem(
                    "edited",
                    f"entry {entry.seq} (line {number}) was edited: "
                    "its hash does not match its content",
                    number,
                    entry.seq,
                )
            elif entry.seq != prev_seq + 1:
                problem = _seq_problem(entry, number, prev_seq, seen)
            elif entry.prev != prev_hash:
                problem = Problem(
                    "altered",
                    f"entry {prev_seq} was altered: entry {entry.seq} (line {number}) "
                    "does not chain to it",
                    number,
                    prev_seq,
                )
            elif entry.kind == Kind.CHECKPOINT:
                result.checkpoints += 1
                problem = _checkpoint_problem(entry, number, jwk)
            if problem is not None:
                result.problems.append(problem)
            if signed is not None and entry.seq == signed.seq:
                signed_hash_in_file = entry.hash
            if witness is not None and entry.seq == witness.seq:
                witnessed_hash_in_file = entry.hash
            prev_seq, prev_hash = entry.seq, entry.hash
        if result.entries:
            result.head = LedgerHead(prev_seq, prev_hash)

    if witness is not None and witness.seq > 0:
        if witness.seq > prev_seq:
            result.problems.append(
                Problem(
                    "cut_tail",
                    f"cut tail: entry {witness.seq} was witnessed outside the site "
                    f"but the ledger ends at entry {prev_seq}",
                    seq=witness.seq,
                )
            )
        elif witnessed_hash_in_file != witness.hash:
            result.problems.append(
                Problem(
                    "cut_tail",
                    f"entry {witness.seq} is not the entry witnessed outside the site "
                    "(the tail was cut and rewritten)",
                    seq=witness.seq,
                )
            )
    if signed is None:
        if result.checkpoints:
            result.problems.append(
                Problem("bad_head", f"{HEAD_FILE} is missing although checkpoints were written")
            )
        return result
    result.signed_seq = signed.seq
    try:
        claimed = _signed_claims(signed.jws, jwk)
    except JwsError as exc:
        result.problems.append(Problem("bad_head", f"{HEAD_FILE}: signature is not valid: {exc}"))
        return result
    if claimed != (signed.seq, signed.hash):
        result.problems.append(
            Problem("bad_head", f"{HEAD_FILE}: its fields differ from what its signature covers")
        )
    elif signed.seq > prev_seq:
        result.problems.append(
            Problem(
                "cut_tail",
                f"cut tail: the signed head is entry {signed.seq} "
                f"but the ledger ends at entry {prev_seq}",
                seq=signed.seq,
            )
        )
    elif signed_hash_in_file is None or signed_hash_in_file != signed.hash:
        result.problems.append(
            Problem(
                "cut_tail",
                f"entry {signed.seq} is not the entry the signed head names "
                "(the tail was cut and rewritten)",
                seq=signed.seq,
            )
        )
    return result
