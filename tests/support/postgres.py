"""A real PostgreSQL for the tests: its own cluster in a temporary directory, on a free port.

`PostgresCluster` runs `initdb` and `pg_ctl` from Debian's `postgresql` package (installed by
`make test` like the other system packages; the binaries live in
`/usr/lib/postgresql/<version>/bin`). As root the server runs as the `postgres` user (it refuses
to run as root); otherwise as the current user. It listens on 127.0.0.1 on a free port and on a
unix socket in its own directory, with `trust` authentication for local connections only: it is
a throw-away server reachable from this machine, never the machine's own PostgreSQL service.

One cluster per test session (per xdist worker: `postgres_cluster`), one database per test
(`cluster.new_database()`), so tests never see each other's rows.

    @pytest.fixture(params=["sqlite", "postgresql"])
    def db_url(request, tmp_path): ...       # see tests/hub/conftest.py
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import free_port

HOST = "127.0.0.1"


def find_bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresCluster:
    def __init__(self) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL is not installed (initdb not found): `make test` installs Debian's "
                "postgresql package"
            )
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="rtcc-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self.port = free_port(HOST)
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self._as_root = os.geteuid() == 0
        self._running = False

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = list(argv)
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )

    def start(self) -> None:
        self.socket_dir.mkdir()
        if self._as_root:
            entry = pwd.getpwnam("postgres")
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        init = self._run(
            str(self.bin / "initdb"),
            "-D", str(self.data),
            "-U", self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.strip()[-800:]}")
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses={HOST} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        started = self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        if started.returncode != 0:
            log = self.log.read_text(errors="replace")[-800:] if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()} {log}")
        self._running = True
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            probe = self._run(
                str(self.bin / "psql"), "-h", str(self.socket_dir), "-p", str(self.port),
                "-U", self.user, "-d", "postgres", "-Atc", "select 1",
            )  # fmt: skip
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not answer: {probe.stderr.strip()}")
            time.sleep(0.1)

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        result = self._run(
            str(self.bin / "psql"), "-h", str(self.socket_dir), "-p", str(self.port),
            "-U", self.user, "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {result.stderr.strip()}")
        return result.stdout.strip()

    def new_database(self) -> str:
        """A fresh, empty database; its asyncpg URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[-1]
        with contextlib.suppress(RuntimeError):
            self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{HOST}:{self.port}/{database}"

    def stop(self) -> None:
        if self._running:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            self._running = False
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the test session (each xdist worker has its own)."""
    if find_bin_dir() is None:
        pytest.fail("PostgreSQL is not installed: run `make test` (it installs postgresql)")
    with running_cluster() as cluster:
        yield cluster
