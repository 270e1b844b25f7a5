"""Footage lost per kind of crash, read back from the footage itself.

    python -m bench.crash_loss [--kinds worker,daemon,tree,powercut] [--runs 5] [--json]

One camsim camera (`camsim run`, own process: 1920x1080 H.264, 15 fps, 4 Mbit/s, GOP 30; every
frame carries its capture time in an SEI message) is recorded by `rtcc-edge run` (60 s
segments, 1 s fragments). After `--before` seconds of recording (mid-segment), at wall time
`killed`, one of:

* `worker`   SIGKILL to the camera's worker process; the daemon restarts it;
* `daemon`   SIGKILL to the daemon only; its workers see the fork server go and close their
             segments themselves;
* `tree`     SIGKILL to every process of the agent at once (daemon, fork server, workers);
* `powercut` as `tree`, with the store on a loop-mounted ext4 image that is copied the moment
             the processes are killed: the copy holds only what had reached the (virtual) disk,
             as after a power cut. The copy is mounted (its journal replayed) and used from then
             on; the image and both mounts live in a private mount namespace (root needed: the
             bench re-runs itself under `unshare -m`).

Then the store is reconciled as the next daemon start does (`ClipStore.reconcile`), every
segment is read back with PyAV, and the loss is `killed` minus the capture time of the last
frame captured before `killed` that is in the store. The index is checked too: segments
quarantined, `store verify`. Prints one row per run and the range per kind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from agent.store.store import NO_SYNC_ENV
from bench.record_cpu import AgentRun, Camsim, machine, tree

KINDS = ("worker", "daemon", "tree", "powercut")
_NAMESPACE_ENV = "RTCC_CRASH_LOSS_NAMESPACE"


def _gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)


def _mount(image: Path, where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(where)], check=True)


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], check=False)


def _make_disk(image: Path, size_mb: int) -> None:
    with image.open("wb") as handle:
        handle.truncate(size_mb * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)


def _stamps(state_dir: Path) -> tuple[list[float], dict[str, Any]]:
    """Reconcile the store as a daemon start would, then every frame's capture time."""
    from agent.config import StoreConfig
    from agent.store import ClipStore, SegmentState
    from camsim.sei import stamps_in_file

    with ClipStore(state_dir / "store", config=StoreConfig(min_free=0)) as store:
        report = store.reconcile()
        rows = store.segments("cam1", states=list(SegmentState))
        captures: list[float] = []
        for row in rows:
            if row.state in (SegmentState.COMPLETE, SegmentState.RECOVERED):
                path = store.layout.segment(row.path)
                captures += [s.capture_time for s in stamps_in_file(str(path))]
        verify = store.verify("cam1")
    facts = {
        "recovered": len(report.recovered),
        "quarantined": len(report.quarantined),
        "cut_bytes": report.lost_bytes,
        "verify_ok": verify.ok,
        "problems": [str(p) for p in verify.problems],
    }
    return sorted(captures), facts


def one_run(kind: str, camsim: Camsim, work: Path, *, before: float) -> dict[str, Any]:
    disk: Path | None = None
    if kind == "powercut":
        image = work / "disk.img"
        _make_disk(image, 256)
        disk = work / "disk"
        _mount(image, disk)
        agent_dir = disk / "agent"
    else:
        agent_dir = work / "agent"
    agent = AgentRun(agent_dir, camsim.cameras).__enter__()
    try:
        agent.wait_recording(timeout=60)
        recording_since = time.time()
        time.sleep(before)
        state = agent.state()
        assert state is not None and state["cam1"]["pid"], "no worker"
        worker = int(state["cam1"]["pid"])
        everyone = [p.pid for p in tree(agent.pid)]
        killed = time.time()
        if kind == "worker":
            os.kill(worker, signal.SIGKILL)
        elif kind == "daemon":
            os.kill(agent.pid, signal.SIGKILL)
        else:
            for pid in everyone:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if kind == "powercut":
            assert disk is not None
            # What the (virtual) disk holds now is what a power cut would have left.
            shutil.copyfile(work / "disk.img", work / "after.img")
        if kind == "worker":
            # The daemon restarts the worker, which recovers the segment it left open.
            def again() -> bool:
                now = agent.state()
                if not now:
                    return False
                return bool(now["cam1"]["status"] == "recording" and now["cam1"]["pid"] != worker)

            deadline = time.monotonic() + 60
            while not again():
                assert time.monotonic() < deadline, "the worker was not restarted"
                time.sleep(0.1)
            resumed = time.time() - killed
            time.sleep(2)
            agent.__exit__(None, None, None)
        else:
            resumed = None
            assert agent.process is not None
            agent.process.wait(30)
            _gone(everyone, 30)  # a daemon kill: the workers finish their segments first
    finally:
        if agent.process is not None and agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait(30)
    state_dir = agent_dir / "state"
    if kind == "powercut":
        assert disk is not None
        _umount(disk)
        _mount(work / "after.img", work / "after")
        state_dir = work / "after" / "agent" / "state"
    try:
        captures, facts = _stamps(state_dir)
    finally:
        if kind == "powercut":
            _umount(work / "after")
    before_kill = [c for c in captures if c <= killed]
    # Nothing at all kept: everything recorded was lost (at least this much).
    lost = killed - (before_kill[-1] if before_kill else recording_since)
    return {
        "kind": kind,
        "lost_s": round(lost, 3),
        "kept_nothing": not before_kill,
        "resumed_after_s": round(resumed, 2) if resumed is not None else None,
        "frames": len(captures),
        **facts,
    }


def _in_namespace(argv: list[str]) -> int:
    """Re-run this bench in a private mount namespace (the power cut mounts disk images)."""
    env = {**os.environ, _NAMESPACE_ENV: "1"}
    command = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        sys.executable,
        "-m",
        "bench.crash_loss",
    ]
    return subprocess.run([*command, *argv], env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="comma-separated, of " + ", ".join(KINDS)
    )
    parser.add_argument("--runs", type=int, default=5, help="kills per kind")
    parser.add_argument("--before", type=float, default=5.5, help="seconds recorded before a kill")
    parser.add_argument(
        "--no-sync",
        action="store_true",
        help="record without the per-fragment fdatasync (to see what it buys on a power cut)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from agent.log import configure_logging

    configure_logging("warning", fmt="console")  # on stderr: stdout is for the results
    if args.no_sync:
        os.environ[NO_SYNC_ENV] = "1"  # inherited by the daemon and its workers
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kind(s): {', '.join(sorted(unknown))}")
    if "powercut" in kinds and os.environ.get(_NAMESPACE_ENV) != "1":
        if os.geteuid() != 0:
            parser.error("the power cut mounts a disk image: run as root")
        return _in_namespace(argv)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="crash-loss-") as tmp:
        work = Path(tmp)
        with Camsim(work / "camsim", cameras=1) as camsim:
            for n in range(args.runs):
                for kind in kinds:
                    run_dir = work / f"{kind}-{n}"
                    run_dir.mkdir()
                    result = one_run(kind, camsim, run_dir, before=args.before + 0.1 * n)
                    runs.append(result)
                    if not args.json:
                        print(json.dumps(result), flush=True)
    summary = {}
    for kind in kinds:
        lost = [r["lost_s"] for r in runs if r["kind"] == kind and r["lost_s"] is not None]
        if lost:
            summary[kind] = {
                "runs": len(lost),
                "min_s": min(lost),
                "median_s": round(statistics.median(lost), 3),
                "max_s": max(lost),
            }
    result = {
        "machine": machine(),
        "fragment_sync": not args.no_sync,
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
        "summary": summary,
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['machine']}; load {result['load_average']}")
        for kind, figures in summary.items():
            print(
                f"{kind}: {figures['runs']} kills, lost {figures['min_s']:.2f}–"
                f"{figures['max_s']:.2f} s (median {figures['median_s']:.2f} s)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
