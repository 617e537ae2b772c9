"""How long ``aegisfwd serve`` takes to answer on the built-in world (no log: the default sample).

    python benchmarks/serve_startup.py [--runs 3] [-- extra serve options]

Starts ``aegisfwd serve --port 0`` (loopback) ``--runs`` times and prints, for each, the seconds until
it printed its "serving on" line and until its first ``/api/summary`` answered; stops it after.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serve_helpers import call, serve_cli, stop_serve_cli


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("extra", nargs="*", help="more `aegisfwd serve` options, after --")
    args = ap.parse_args()
    for run in range(1, args.runs + 1):
        t0 = time.monotonic()
        proc, base = serve_cli(*args.extra)
        try:
            listening = time.monotonic() - t0
            status, _, _ = call(base, "GET", "/api/summary")
            answered = time.monotonic() - t0
            assert status == 200, status
        finally:
            stop_serve_cli(proc)
        print(f"run {run}: listening after {listening:.2f} s, first /api/summary after {answered:.2f} s")


if __name__ == "__main__":
    main()
