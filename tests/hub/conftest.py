"""Fixtures for the hub: a configured hub home on the test broker, and running `rtcc-hub`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.cli import main
from hub.state import HubHome
from tests.support.broker import (
    MosquittoBroker,
    broker,  # noqa: F401 - pytest fixture
)
from tests.support.postgres import PostgresCluster, postgres_cluster  # noqa: F401
from tests.support.rtcc import ISSUER

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@dataclass
class HubRunner:
    home: HubHome
    capsys: pytest.CaptureFixture[str]

    def _main(self, argv: tuple[str, ...]) -> int:
        try:
            return main(["--home", str(self.home.root), *argv])
        except SystemExit as exc:  # argparse's own usage errors
            return int(exc.code or 0)

    def run(self, *argv: str) -> CliResult:
        """`rtcc-hub --home HOME argv…` in this thread."""
        self.capsys.readouterr()
        code = self._main(argv)
        captured = self.capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    async def run_async(self, *argv: str) -> CliResult:
        """The same from a worker thread, so the test's event loop (sessions) keeps running."""
        self.capsys.readouterr()
        code = await asyncio.to_thread(self._main, argv)
        captured = self.capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    @contextlib.asynccontextmanager
    async def process(self, *argv: str) -> AsyncIterator[asyncio.subprocess.Process]:
        """`python -m hub …` as a real process whose stdout the test reads line by line."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub",
            "--home",
            str(self.home.root),
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


def init_home(
    root: Path, broker_: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> HubRunner:
    runner = HubRunner(HubHome(root), capsys)
    cert, key = broker_.issue_client_cert("hub")
    result = runner.run(
        "init",
        "--broker",
        broker_.url(hub=True),
        "--ca",
        str(broker_.ca_file),
        "--cert",
        str(cert),
        "--key",
        str(key),
    )
    assert result.code == 0, result.err
    result = runner.run("keys", "new", "--issuer", ISSUER)
    assert result.code == 0, result.err
    return runner


@pytest.fixture
def hub_cli(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> HubRunner:
    """A hub home in tmp_path, configured for the session broker, with a fresh signing key."""
    return init_home(tmp_path / "hub", broker, capsys)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test, on each backend the hub supports: SQLite in
    tmp_path, and a database of its own on the session's PostgreSQL cluster."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    url = cluster.new_database()
    try:
        yield url
    finally:
        cluster.drop_database(url)
