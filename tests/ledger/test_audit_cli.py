"""`rtcc-edge audit`, `audit verify` and `audit report` on a real ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.identity import DeviceKey
from agent.ledger import LEDGER_FILE, Ledger, entries


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    key = DeviceKey.load_or_create(state / "device.key")
    ledger = Ledger.open(state / "ledger", signer=key, checkpoint_every=5)
    about = {"issuer": "https://rtcc.test", "cmd": "clip"}
    for index, camera in enumerate(["front-door", "parking-lot", "front-door"]):
        data = {**about, "jti": f"r{index}", "camera": camera}
        ledger.append(entries.RequestReceived(**data, verified=True, bytes=500, code=None))
        outcome = "accepted" if camera == "front-door" else "pending_approval"
        ledger.append(entries.Decision.model_validate({**data, "outcome": outcome}))
    ledger.append(
        entries.LiveSession(
            jti="r0", issuer="https://rtcc.test", camera="front-door", seconds=120, reason="ended"
        )
    )
    ledger.close()
    path = tmp_path / "agent.toml"
    path.write_text(
        f'state_dir = "{state}"\n[site]\nid = "site-1"\nname = "Corner"\n'
        f'[control]\nsocket = "{tmp_path / "ctl.sock"}"\n'
    )
    return path


def run(config_file: Path, *args: str) -> int:
    return main(["--config", str(config_file), *args])


def test_list(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config_file, "audit", "--json") == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in entries][:2] == ["request_received", "decision"]
    assert run(config_file, "audit", "--since", "1h") == 0
    out = capsys.readouterr().out
    assert "request_received" in out and "parking-lot" in out
    assert run(config_file, "audit", "--since", "2999-01-01T00:00:00Z", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_bad_since(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config_file, "audit", "--since", "last tuesday") == 2
    assert "--since" in capsys.readouterr().err


def test_verify_ok_then_tampered(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config_file, "audit", "verify") == 0
    assert "ledger OK" in capsys.readouterr().out
    ledger_file = config_file.parent / "state" / "ledger" / LEDGER_FILE
    content = ledger_file.read_text().splitlines(keepends=True)
    content[3] = content[3].replace("pending_approval", "accepted")
    ledger_file.write_text("".join(content))
    assert run(config_file, "audit", "verify") == 1
    err = capsys.readouterr().err
    assert "NOT OK" in err and "entry 4 (line 4) was edited" in err
    assert run(config_file, "audit", "--verify", "--json") == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False and result["problems"][0]["seq"] == 4


def test_verify_across_a_key_rotation(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the rotation docs/operations.md describes, checkpoints signed by the retired key
    still verify, and new ones by the new key too; a stranger's key still does not."""
    state = config_file.parent / "state"
    (state / "device.key").rename(state / "device.key.retired-2026-11-22")
    new_key = DeviceKey.load_or_create(state / "device.key")
    ledger = Ledger.open(state / "ledger", signer=new_key, checkpoint_every=2)
    for n in range(3):
        ledger.append(entries.Decision(jti=f"after-{n}", outcome="accepted"))
    ledger.close()
    assert run(config_file, "audit", "verify") == 0, capsys.readouterr().err
    capsys.readouterr()
    (state / "device.key.retired-2026-11-22").unlink()
    assert run(config_file, "audit", "verify") == 1
    assert "checkpoint" in capsys.readouterr().err


def test_verify_needs_the_device_key(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (config_file.parent / "state" / "device.key").unlink()
    assert run(config_file, "audit", "verify") == 2
    assert "device key" in capsys.readouterr().err


def test_report(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config_file, "audit", "report", "--since", "30d", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["total"]["received"] == 3 and report["total"]["automatic"] == 2
    assert report["total"]["live_minutes"] == 2.0
    assert report["by_camera"]["parking-lot"]["received"] == 1
    assert run(config_file, "audit", "report") == 0
    out = capsys.readouterr().out
    assert "Transparency report" in out and "https://rtcc.test" in out


def test_verify_with_a_witness(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The head kept outside the site (issue 12, item 5): what the file alone cannot show."""
    ledger_dir = tmp_path / "state" / "ledger"
    head_copy = tmp_path / "head-copy.json"
    head_copy.write_text((ledger_dir / "head.json").read_text())
    lines = (ledger_dir / LEDGER_FILE).read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])
    assert run(config_file, "audit", "verify", "--witness", f"{last['seq']}:{last['hash']}") == 0
    assert run(config_file, "audit", "verify", "--witness", str(head_copy)) == 0
    capsys.readouterr()
    # Cut back to before the first checkpoint, head.json gone with it: alone, it looks whole.
    cut = next(i for i, line in enumerate(lines) if '"kind": "checkpoint"' in line)
    (ledger_dir / LEDGER_FILE).write_text("".join(lines[:cut]))
    (ledger_dir / "head.json").unlink()
    assert run(config_file, "audit", "verify") == 0
    for witness in (f"{last['seq']}:{last['hash']}", str(head_copy)):
        assert run(config_file, "audit", "verify", "--witness", witness) == 1
        assert f"entry {last['seq']} was witnessed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("witness", "said"),
    [
        ("12", "give SEQ:HASH"),
        ("/nonexistent/status.jwt", "cannot read"),
        ("a.b.c", "not a ledger head signed by this site"),
    ],
)
def test_a_bad_witness_is_a_sentence(
    config_file: Path, capsys: pytest.CaptureFixture[str], witness: str, said: str
) -> None:
    assert run(config_file, "audit", "verify", "--witness", witness) == 2
    assert said in capsys.readouterr().err


def test_a_witness_signed_by_another_key_is_refused(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = DeviceKey.generate().sign({"ledger_seq": 1, "ledger_hash": "0" * 64})
    assert run(config_file, "audit", "verify", "--witness", token) == 2
    assert "not a ledger head signed by this site" in capsys.readouterr().err
