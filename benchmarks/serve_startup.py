"""How long ``aegisfwd serve`` takes to answer on the built-in world (no log: the default sample).

    python benchmarks/serve_startup.py [--runs 3] [-- extra serve options]

Starts ``aegisfwd serve --port 0`` (loopback) ``--runs`` times and prints, for each, the seconds until
it printed its "serving on" line and until its first ``/api/summary`` answered; stops it after.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("extra", nargs="*", help="more `aegisfwd serve` options, after --")
    args = ap.parse_args()
    cli = [sys.executable, "-c", "import sys; from aegisfwd.cli import main; sys.exit(main())"]
    for run in range(1, args.runs + 1):
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [*cli, "serve", "--port", "0", *args.extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                if line.startswith("serving on "):
                    base = line.split()[2].rstrip("/")
                    break
            else:
                raise SystemExit("aegisfwd serve exited before it served")
            listening = time.monotonic() - t0
            with urllib.request.urlopen(base + "/api/summary", timeout=120) as answer:
                json.loads(answer.read())
            answered = time.monotonic() - t0
        finally:
            proc.terminate()
            proc.wait(30)
            proc.stdout.close()
        print(f"run {run}: listening after {listening:.2f} s, first /api/summary after {answered:.2f} s")


if __name__ == "__main__":
    main()
