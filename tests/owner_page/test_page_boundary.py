"""The owner's page keeps the owner boundary, with real users: the daemon runs as the service
user `rtcc-edge`; the page (`rtcc-edge owner serve`) run as that same user lets one sign in but
refuses every change with a plain sentence, and nothing is ledgered; run as `rtcc-edge-page`
(in the rtcc-edge-owner group) it approves and pauses, and the ledger says it was done through
the owner's page. The check that would have caught the page running inside the daemon."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.real_users import NEEDS_REAL_USERS, run_driver, scratch, write_site

pytestmark = NEEDS_REAL_USERS


@pytest.fixture
def result() -> Iterator[dict[str, Any]]:
    with scratch("rc-page-") as work:
        write_site(work)
        yield run_driver("tests.owner_page.page_boundary_driver", work)


def test_the_service_user_cannot_act_as_the_owner_through_the_page(
    result: dict[str, Any],
) -> None:
    service = result["service"]
    assert service["sign_in"] == 303, result["service_log"]
    for change in ("approve", "pause"):
        answer = service[change]
        print(f"page as rtcc-edge: {change}: {answer['alert']}")
        assert not answer["done"] and not answer["traceback"], answer
        assert "runs as the user rtcc-edge, which may not act as the owner" in answer["alert"]
        assert "rtcc-edge-owner group" in answer["alert"] and answer["alert"].endswith("machine.")
    # Footage and the record are the owner's too: the daemon refuses the page's user.
    assert service["activity"]["status"] == 403 and not service["activity"]["intact"]
    assert "may not act as the owner" in service["activity"]["alert"]
    assert "may not act as the owner" in service["cameras"]["alert"]
    # Each camera says why it has no picture, rather than "nothing was recorded".
    assert service["cameras"]["no_footage_shown"]
    kinds = {entry["kind"] for entry in result["service_ledger"]}
    assert not kinds & {"approval", "paused"}, result["service_ledger"]

    page = result["page"]
    assert page["sign_in"] == 303, result["page_log"]
    assert page["approve"]["done"] and not page["approve"]["alert"], page["approve"]
    assert page["pause"]["done"] and not page["pause"]["alert"], page["pause"]
    assert page["activity"]["status"] == 200 and page["activity"]["intact"]
    by = {entry["kind"]: entry["by"] for entry in result["page_ledger"]}
    expected = f"uid {result['page_uid']} (rtcc-edge-page) through the owner's page"
    assert by["approval"] == by["paused"] == expected
