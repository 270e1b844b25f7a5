"""The owner boundary with real users: a site running as the service user `rtcc-edge`, and the
owner CLI run as that user (refused, with a plain sentence), as a member of the rtcc-edge group
who is not the owner (may read only), as a member of `rtcc-edge-owner` and as root (both may
act). Users and groups live in a scratch /etc inside a private mount namespace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.real_users import NEEDS_REAL_USERS, run_driver, scratch, write_site

pytestmark = NEEDS_REAL_USERS


@pytest.fixture
def result() -> Iterator[dict[str, Any]]:
    with scratch("rc-own-") as work:
        write_site(work)
        yield run_driver("tests.control.owner_boundary_driver", work)


def test_only_the_owner_changes_what_the_site_shares(result: dict[str, Any]) -> None:
    first, second = result["pending"]
    service = result["service"]
    # Reading stays open to the service user.
    assert service["status"]["code"] == 0, service["status"]
    assert json.loads(service["status"]["out"])["pending"] == 2
    assert service["requests"]["code"] == 0
    # Every change is refused, with a sentence, exit 2.
    for command in ("pause", "sharing_set", "approve", "deny", "live_stop"):
        answer = service[command]
        print(f"as rtcc-edge: {command}: exit {answer['code']}: {answer['err'].strip()}")
        assert answer["code"] == 2, (command, answer)
        assert "Only the owner can do that" in answer["err"], (command, answer)
        assert "Traceback" not in answer["err"]
    # The daemon itself refuses the service user, whatever the client.
    for command in ("raw_pause", "raw_approve", "raw_sharing_set"):
        assert service[command]["ok"] is False, service[command]
        assert service[command]["error"]["code"] == "not_owner"
        assert "service's own user may only read" in service[command]["error"]["message"]
    assert service["write_owner_dir"]["code"] != 0
    assert "Permission denied" in service["write_owner_dir"]["err"]
    # A member of the rtcc-edge group who is not in the owner group reads, cannot act.
    assert result["bob"]["status"]["code"] == 0
    assert result["bob"]["raw_resume"]["error"]["code"] == "not_owner"
    assert "bob) is not the owner" in result["bob"]["raw_resume"]["error"]["message"]
    after = json.loads(result["after_refusals"]["out"])
    assert after["paused"] is False and after["pending"] == 2
    assert all(row["source"] == "config" for row in after["cameras"])

    owner = result["owner"]
    for command, answer in owner.items():
        assert answer["code"] == 0, (command, answer)
    print("as alice (rtcc-edge-owner):", owner["pause"]["out"].strip())
    assert json.loads(owner["status"]["out"])["paused"] is True
    assert "sharing resumed" in owner["resume"]["out"]
    assert f"approved {first}" in owner["approve"]["out"]
    assert (
        result["root"]["deny"]["code"] == 0 and f"denied {second}" in result["root"]["deny"]["out"]
    )
    assert result["root"]["sharing_set"]["code"] == 0

    final = json.loads(result["final"]["out"])
    assert final["paused"] is False
    side = next(row for row in final["cameras"] if row["camera"] == "side-door")
    assert side["mode"] == "integrated" and side["source"] == "owner"

    # The owner's file: written by the owner's tools, readable by the service, and it records
    # who decided what.
    owner_file = result["owner_file"]
    assert owner_file["mode"] == 0o644
    assert owner_file["uid"] in (0, owner_file["alice_uid"])
    decisions = owner_file["content"]["decisions"]
    assert decisions[first]["decision"] == "approved"
    assert decisions[first]["by"].endswith("(alice)")
    assert decisions[second]["decision"] == "denied"
    assert decisions[second]["by"] == "uid 0 (root)"
    states = {r["id"]: r["state"] for r in json.loads(result["requests"]["out"])}
    assert states[first] != "pending_approval" and states[second] == "rejected"
