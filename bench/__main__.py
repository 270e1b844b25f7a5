"""`make bench`: run every benchmark in `bench/` (or the ones named) one after another.

Each benchmark is a module with its own flags (`python -m bench.<name> --help`); run here with
its defaults, in a fresh interpreter so one benchmark's processes and caches do not skew the next.
Results are printed; the figures worth keeping go in bench/RESULTS.md with the command and machine.
"""

from __future__ import annotations

import argparse
import pkgutil
import subprocess
import sys
import time
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        info.name for info in pkgutil.iter_modules([str(here)]) if not info.name.startswith("_")
    )


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(names)}")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(names))
        return 0
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}")
    failed: list[str] = []
    for name in args.names or names:
        print(f"\n=== bench.{name} ===", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False)
        print(f"=== bench.{name}: exit {result.returncode}, {time.monotonic() - started:.0f} s")
        if result.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
