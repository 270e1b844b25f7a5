"""A real mosquitto (TLS, client certificates, ACL) and real camsim cameras, one of each per
test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.doctor.site_setup import CAMERA_PASSWORD
from tests.support.broker import MosquittoBroker, running_broker
from tests.support.camsim import CamsimRun, camera, run_cameras


@pytest.fixture(scope="module")
def mqtt() -> Iterator[MosquittoBroker]:
    with running_broker() as running:
        yield running


@pytest.fixture(scope="module")
def cams() -> Iterator[CamsimRun]:
    with run_cameras(
        camera("hikvision", id="front", host="127.0.0.30", password=CAMERA_PASSWORD),
        camera("budget", id="yard", host="127.0.0.31", password=CAMERA_PASSWORD),
    ) as run:
        yield run
