"""CPU per camera of the agent's recorder, against ffmpeg recording the same camsim stream.

    python -m bench.record_cpu [--seconds 60] [--repeat 1] [--cameras 1] [--json]

camsim cameras (1920x1080 H.264, 15 fps, 4 Mbit/s, GOP 30; one unless `--cameras N`) run in
their own process (`camsim run`). Two clients pull each stream at the same time:

* the agent: `rtcc-edge run` (the real daemon, its fork server and the camera's worker process)
  recording into a temporary clip store, 60 s segments;
* the peer: `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 60
  -reset_timestamps 1 out%03d.mp4`.

A third client, bare PyAV (`av.open` with the agent's options, `demux()`, nothing written), shows
how much of the agent's cost is the demuxing itself and how much is the rest (segment writer,
IPC, supervisor). After a warm-up, CPU (user + system, from psutil) of each process tree is
measured over the window and printed as % of one core, with the ratio agent / ffmpeg (target
≤ 1.3) and the agent's breakdown by process (daemon, fork server, worker).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psutil

PASSWORD = "bench-Pa55"


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (the daemon, its fork server, the workers)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def ffmpeg_version() -> str:
    done = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else "ffmpeg ?"


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Camsim:
    """`camsim run` with N generic cameras (1080p15 H.264 4 Mbit/s) in its own process."""

    def __init__(self, work: Path, *, cameras: int) -> None:
        self.work = work
        self.count = cameras
        self.cameras: list[dict[str, Any]] = []
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Camsim:
        self.work.mkdir(parents=True, exist_ok=True)
        ready = self.work / "ready.json"
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "camsim", "run", "--cameras", str(self.count),
                "--persona", "generic", "--password", PASSWORD, "--no-discovery",
                "--no-control", "--ready-file", str(ready), "--log-level", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.work / "camsim.log").open("wb"),
        )  # fmt: skip
        _wait_for(ready.exists, 600, "camsim (the first run encodes the 1080p loop)")
        self.cameras = json.loads(ready.read_text())["cameras"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)

    @staticmethod
    def with_credentials(url: str, camera: dict[str, Any]) -> str:
        parts = urlsplit(url)
        user = quote(camera["username"], safe="")
        return urlunsplit(
            parts._replace(netloc=f"{user}:{quote(PASSWORD, safe='')}@{parts.netloc}")
        )


class AgentRun:
    """`rtcc-edge run` recording the given camsim cameras into a temporary store."""

    def __init__(self, work: Path, cameras: list[dict[str, Any]]) -> None:
        self.work = work
        self.cameras = cameras
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> AgentRun:
        self.work.mkdir(parents=True, exist_ok=True)
        config = self.work / "agent.toml"
        lines = [
            f'state_dir = "{self.work / "state"}"',
            '[site]\nid = "bench"\nname = "bench"',
            "[store]\nsegment_seconds = 60\nmin_free = 0",
            f'[control]\nsocket = "{self.work / "control.sock"}"',
            '[log]\nlevel = "warning"\nformat = "json"',
        ]
        for n, camera in enumerate(self.cameras, 1):
            lines.append(
                f'[[cameras]]\nid = "cam{n}"\nname = "cam{n}"\n'
                f'rtsp_url = "{camera["rtsp"]["main"]}"\n'
                f'username = "{camera["username"]}"\nsecret = "{PASSWORD}"'
            )
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent", "--config", str(config), "run"],
            stdout=subprocess.DEVNULL,
            stderr=(self.work / "agent.log").open("wb"),
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)

    def state(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.work / "state" / "recorders.json").read_text())
        except (OSError, ValueError):
            return None
        cameras: dict[str, Any] = data["cameras"]
        return cameras if data["pid"] == self.pid else None

    def wait_recording(self, *, timeout: float) -> None:
        def all_recording() -> bool:
            state = self.state()
            assert self.process is not None and self.process.poll() is None, "agent died"
            if not state:
                return False
            return all(c["status"] == "recording" for c in state.values())

        _wait_for(all_recording, timeout, "every camera to record")

    def roles(self, processes: list[psutil.Process]) -> dict[str, list[psutil.Process]]:
        """The agent's processes by role. Workers are forked (not exec'd) by the fork server,
        so they share its command line: tell them apart by parentage."""
        roles: dict[str, list[psutil.Process]] = {"daemon": [], "forkserver": [], "workers": []}
        for process in processes:
            try:
                parent = process.ppid()
            except psutil.NoSuchProcess:
                continue
            if process.pid == self.pid:
                roles["daemon"].append(process)
            elif parent == self.pid:  # the fork server and multiprocessing's resource tracker
                roles["forkserver"].append(process)
            else:
                roles["workers"].append(process)
        return roles


def _ffmpeg(url: str, out: Path) -> subprocess.Popen[bytes]:
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
            "-c", "copy", "-f", "segment", "-segment_time", "60", "-reset_timestamps", "1",
            str(out / "out%03d.mp4"),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _demux_only(url: str) -> None:
    """The bare PyAV peer: what demuxing alone costs (run as `--demux-only URL`)."""
    import av

    options = {
        "rtsp_transport": "tcp",
        "allowed_media_types": "video",
        "probesize": "32768",
        "analyzeduration": "0",
    }
    with av.open(url, options=options, timeout=(5.0, None)) as container:
        for _ in container.demux(container.streams.video[0]):
            pass


def measure(seconds: float, warmup: float, work: Path, *, cameras: int = 1) -> dict[str, Any]:
    """One run with `cameras` cameras: the agent records them all, one ffmpeg per camera
    records the same streams; figures are per camera (the agent's daemon shared by all)."""
    with Camsim(work / "camsim", cameras=cameras) as camsim:
        urls = [camsim.with_credentials(c["rtsp"]["main"], c) for c in camsim.cameras]
        with AgentRun(work / "agent", camsim.cameras) as agent:
            ffmpegs = [_ffmpeg(url, work / f"ffmpeg{n}") for n, url in enumerate(urls)]
            pyav = subprocess.Popen(
                [sys.executable, "-m", "bench.record_cpu", "--demux-only", urls[0]]
            )
            try:
                agent.wait_recording(timeout=60)
                time.sleep(warmup)
                ffs = [psutil.Process(f.pid) for f in ffmpegs]
                bare = psutil.Process(pyav.pid)
                agent_procs = tree(agent.pid)
                roles = agent.roles(agent_procs)
                before = {p.pid: cpu_seconds(p) for p in [*agent_procs, *ffs, bare]}
                wall = time.monotonic()
                time.sleep(seconds)
                elapsed = time.monotonic() - wall
                after = {p.pid: cpu_seconds(p) for p in [*agent_procs, *ffs, bare]}
                state = agent.state()
            finally:
                for peer in (*ffmpegs, pyav):
                    peer.terminate()
                    peer.wait(30)
    used = {pid: after[pid] - before[pid] for pid in after}
    breakdown = {
        role: 100 * sum(used[p.pid] for p in procs) / elapsed / cameras
        for role, procs in roles.items()
    }
    ours = sum(breakdown.values())
    theirs = 100 * sum(used[f.pid] for f in ffs) / elapsed / cameras
    return {
        "seconds": round(elapsed, 1),
        "cameras": cameras,
        "agent_percent": round(ours, 3),
        "ffmpeg_percent": round(theirs, 3),
        "pyav_demux_percent": round(100 * used[bare.pid] / elapsed, 3),
        "ratio": round(ours / theirs, 2) if theirs else None,
        "agent_breakdown": {k: round(v, 3) for k, v in breakdown.items()},
        "recording": state["cam1"]["status"] if state else None,
        "bytes_written": state["cam1"]["bytes_written"] if state else None,
    }


def machine() -> str:
    return f"{platform.platform()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--cameras",
        type=int,
        default=1,
        help="cameras recorded at once (figures are per camera; the daemon is shared)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--demux-only", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.demux_only:
        _demux_only(args.demux_only)
        return 0
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="record-cpu-") as tmp:
            runs.append(measure(args.seconds, args.warmup, Path(tmp), cameras=args.cameras))
    result = {
        "machine": machine(),
        "ffmpeg": ffmpeg_version(),
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['machine']}; {result['ffmpeg']}; load {result['load_average']}")
        for run in runs:
            parts = ", ".join(f"{k} {v:.2f} %" for k, v in run["agent_breakdown"].items())
            print(
                f"{run['seconds']} s, {run['cameras']} camera(s), per camera: "
                f"agent {run['agent_percent']:.2f} % of one core ({parts}); "
                f"ffmpeg {run['ffmpeg_percent']:.2f} %; ratio {run['ratio']}; "
                f"bare PyAV demux {run['pyav_demux_percent']:.2f} % "
                f"[{run['recording']}, {run['bytes_written']} bytes]"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
