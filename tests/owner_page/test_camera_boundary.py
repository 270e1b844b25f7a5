"""The Cameras page with real users: the daemon runs as the service user `rtcc-edge`, whose
secret key the page's user `rtcc-edge-page` cannot read. Run as `rtcc-edge-page` (in the
rtcc-edge-owner group), the page still stores a camera's new password and adds a camera — the
daemon seals each password (`seal`), the page writes the configuration, the daemon applies it
(`reload`) and records both cameras. Run as the service user, the same forms change nothing:
the daemon refuses to seal for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.owner_page.camera_boundary_driver import CAMERA_PASSWORD
from tests.support.real_users import NEEDS_REAL_USERS, run_driver, scratch

pytestmark = NEEDS_REAL_USERS


@pytest.fixture
def result() -> Iterator[dict[str, Any]]:
    with scratch("rc-cams-") as work:
        yield run_driver("tests.owner_page.camera_boundary_driver", work)


def test_the_pages_user_stores_passwords_it_cannot_decrypt(result: dict[str, Any]) -> None:
    service = result["service"]
    assert service["sign_in"] == 303, result["service_log"]
    for change in ("password", "add"):
        print(f"page as rtcc-edge: {change}: {service[change]['alert']}")
        assert not service[change]["done"], service[change]
        assert "Only the owner can do that" in service[change]["alert"], service[change]
    assert not result["service_changed_the_file"]

    page = result["page"]
    assert page["sign_in"] == 303, result["page_log"]
    print(f"page as rtcc-edge-page: {page['password']['done']} / {page['add']['done']}")
    assert "The camera accepted the new password; it is stored." in page["password"]["done"]
    assert "Recording restarted with the new password." in page["password"]["done"]
    assert "Added Till (till)." in page["add"]["done"], page["add"]
    assert "Recording starts now." in page["add"]["done"]
    assert result["page_changed_the_file"]
    assert result["page_reads_key"] != 0, "the key is the service's alone"
    assert result["secrets"] == {"door": CAMERA_PASSWORD, "till": CAMERA_PASSWORD}
    assert not result["plain_in_file"]
    assert result["recording"] == {"door": True, "till": True}, result["daemon_log"]
