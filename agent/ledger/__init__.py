"""The tamper-evident ledger: every request, decision, approval, hold, upload, live session and
sharing change, in an append-only hash-chained file the owner can read with `cat` and check
with `rtcc-edge audit verify`.

Entry kinds and their `data` (all ids are the request's `jti`); each kind has its pydantic model
in `agent.ledger.entries`, which is what `Ledger.append` takes:

- `request_received`: `jti` (None if unreadable), `verified` (signature checked out), `issuer`,
  `cmd`, `camera`, `case`, `requester`, `reason`, `bytes`, `kid`, `code`/`message` (None when the
  request passed verification; otherwise the reject code);
- `unparseable`: `bytes`, `sha256`, `message`, `code` (a payload that is not even a JWT);
- `decision`: `jti`, `issuer`, `cmd`, `camera`, `outcome` (accepted / pending_approval /
  rejected), `code`, `message`;
- `approval` / `denial`: `jti`, `issuer`, `cmd`, `camera`, `by`, (`reason` for a denial);
- `request_closed`: `jti`, `issuer`, `cmd`, `camera`, `state` (a final state), `code`, `message`;
- `hold_placed` / `hold_released`: `hold_id`, `jti`, `camera`, `start`, `end` / `released`;
- `upload_started`: `jti`, `issuer`, `requester`, `case`, `camera`, `object`, `host`, `size`,
  `sha256`: written, durably, before the first byte of an object leaves the site (nothing is
  sent when it cannot be written);
- `upload`: the same, then `outcome`, `bytes` (what actually left the site, every attempt
  counted, also when the upload failed or was cancelled), `attempts`, `tries`; `live_session`:
  `jti`, `issuer`, `camera`, `seconds`, `reason`, `bytes`;
- `sharing_changed`: `camera`, `mode`, `live`, `previous_mode`, `previous_live`, `by`;
  `paused`: `until` (None: until resumed), `by`; `resumed`: `automatic`, `by`;
- `checkpoint`: `head_seq`, `head_hash`, `kid`, `jws`; `recovered`: a torn last line removed.
"""

from agent.ledger import entries
from agent.ledger.chain import (
    HEAD_FILE,
    LEDGER_FILE,
    Entry,
    Kind,
    Ledger,
    LedgerError,
    LedgerFormatError,
    LedgerHead,
    read_entries,
)
from agent.ledger.entries import LedgerEntry
from agent.ledger.report import Tally, TransparencyReport, build_report
from agent.ledger.verify import Problem, Verification, verify_ledger

__all__ = [
    "HEAD_FILE",
    "LEDGER_FILE",
    "Entry",
    "Kind",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "LedgerFormatError",
    "LedgerHead",
    "Problem",
    "Tally",
    "TransparencyReport",
    "Verification",
    "build_report",
    "entries",
    "read_entries",
    "verify_ledger",
]
