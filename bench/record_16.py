"""16 cameras at once: the agent's total CPU and the memory of all its processes.

    python -m bench.record_16 [--cameras 16] [--seconds 60] [--json]

camsim serves N generic cameras (1920x1080 H.264, 15 fps, 4 Mbit/s, GOP 30) from its own
process; `rtcc-edge run` records all of them into a temporary clip store (60 s segments). After
a warm-up, the CPU (user + system) of every agent process — the daemon, its fork server and
resource tracker, one worker per camera — is summed over the window (target ≤ 30 % of one
core), and their memory is summed as PSS, each shared page counted once (target ≤ 400 MB).
USS and RSS are printed too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.record_cpu import AgentRun, Camsim, cpu_seconds, machine, tree


def _memory(processes: list[psutil.Process]) -> dict[str, float]:
    pss = uss = rss = 0
    for process in processes:
        try:
            info = process.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        pss += info.pss
        uss += info.uss
        rss += info.rss
    return {"pss_mb": pss / 1e6, "uss_mb": uss / 1e6, "rss_mb": rss / 1e6}


def measure(cameras: int, seconds: float, warmup: float, work: Path) -> dict[str, Any]:
    with (
        Camsim(work / "camsim", cameras=cameras) as camsim,
        AgentRun(work / "agent", camsim.cameras) as agent,
    ):
        agent.wait_recording(timeout=120)
        time.sleep(warmup)
        processes = tree(agent.pid)
        roles = agent.roles(processes)
        before = {p.pid: cpu_seconds(p) for p in processes}
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        after = {p.pid: cpu_seconds(p) for p in processes}
        memory = {role: _memory(procs) for role, procs in roles.items()}
        total_memory = _memory(processes)
        state = agent.state() or {}
    cpu = {
        role: 100 * sum(after[p.pid] - before[p.pid] for p in procs) / elapsed
        for role, procs in roles.items()
    }
    recording = sum(1 for c in state.values() if c["status"] == "recording")
    return {
        "cameras": cameras,
        "seconds": round(elapsed, 1),
        "processes": len(processes),
        "cpu_percent": round(sum(cpu.values()), 2),
        "cpu_by_role": {k: round(v, 2) for k, v in cpu.items()},
        "memory": {k: round(v, 1) for k, v in total_memory.items()},
        "memory_by_role": {r: {k: round(v, 1) for k, v in m.items()} for r, m in memory.items()},
        "recording": recording,
        "restarts": sum(c["restarts"] for c in state.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="record-16-") as tmp:
        run = measure(args.cameras, args.seconds, args.warmup, Path(tmp))
    run["machine"] = machine()
    run["load_average"] = [round(x, 2) for x in psutil.getloadavg()]
    if args.json:
        json.dump(run, sys.stdout, indent=2)
        print()
        return 0
    print(f"{run['machine']}; load {run['load_average']}")
    print(
        f"{run['cameras']} cameras ({run['recording']} recording, {run['restarts']} restarts), "
        f"{run['seconds']} s, {run['processes']} agent processes"
    )
    print(
        f"CPU {run['cpu_percent']:.2f} % of one core: "
        + ", ".join(f"{k} {v:.2f} %" for k, v in run["cpu_by_role"].items())
    )
    memory = run["memory"]
    print(
        f"memory PSS {memory['pss_mb']:.1f} MB (USS {memory['uss_mb']:.1f}, "
        f"RSS {memory['rss_mb']:.1f}): "
        + ", ".join(f"{k} PSS {v['pss_mb']:.1f} MB" for k, v in run["memory_by_role"].items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
