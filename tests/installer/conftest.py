"""Running `installer/install.sh` as an owner would (through /bin/sh, i.e. dash on Debian),
against a real `rtcc-hub serve`, into staging roots the tests inspect."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.hub_enroll import EnrollHub, HubThread

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "installer" / "install.sh"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_installer(
    *args: str,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
    timeout: float = 600,
) -> Result:
    environment = {**os.environ, **(env or {})}
    environment.pop("RTCC_EDGE_ENROLL_TOKEN", None)
    if env and "RTCC_EDGE_ENROLL_TOKEN" in env:
        environment["RTCC_EDGE_ENROLL_TOKEN"] = env["RTCC_EDGE_ENROLL_TOKEN"]
    proc = subprocess.run(
        [*prefix, "/bin/sh", str(INSTALLER), *args],
        capture_output=True,
        text=True,
        env=environment,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    print(proc.stdout)
    print(proc.stderr, file=sys.stderr)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def base_python() -> str:
    """The interpreter under the tests' virtualenv (3.11+, with venv), for --python."""
    return str(getattr(sys, "_base_executable", sys.executable))


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnrollHub]:
    # With the broker running: uninstalling takes the site off the map there.
    with HubThread(tmp_path_factory.mktemp("installer-hub"), broker=True) as running:
        yield running


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout as a wheel, built once: installing the same wheel twice is a no-op."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (built,) = out.glob("rtcc_edge-*.whl")
    return built


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def read_manifest(root: Path) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for line in (root / "etc/rtcc-edge/install-manifest.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        kind, path, mode, owner, group, klass = line.split("\t")
        rows.append((kind, path, mode, owner, group, klass))
    return rows
