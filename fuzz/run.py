"""Run every fuzz target for a bounded time; exit 1 on any finding (used by .ci/run).

    python fuzz/run.py --seconds 50 [--targets compiled,batch] [--summary out.json]

Each target fuzzes a scratch copy of its seed corpus (fuzz/corpus/<target>), so the repository's
corpus only grows by hand: an input the fuzzer finds is written to <artifacts>/<target>-crash-*,
and belongs in fuzz/corpus/<target>/ once fixed, where tests/test_fuzz_corpora.py replays it on
every test run. Prints one line per target: executions, coverage, time, findings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ("topology", "compiled", "batch", "logrows", "proxy")


def run_target(name: str, seconds: int, artifacts: Path) -> dict[str, object]:
    # A finding left by an earlier run in the same folder is not this run's: move it aside (kept
    # under old/ for whoever has not looked at it yet), so that only new findings count.
    stale = [p for p in artifacts.glob(f"{name}-*") if p.name != f"{name}.log"]
    if stale:
        (artifacts / "old").mkdir(exist_ok=True)
        for p in stale:
            p.replace(artifacts / "old" / p.name)
    work = Path(tempfile.mkdtemp(prefix=f"aegisfwd-fuzz-{name}-"))
    try:
        cmd = [
            sys.executable,
            str(HERE / f"fuzz_{name}.py"),
            f"-max_total_time={seconds}",
            "-timeout=20",  # one input running longer than this is a finding (a hang)
            "-rss_limit_mb=4096",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/{name}-",
            str(work),
            str(HERE / "corpus" / name),
        ]
        t0 = time.monotonic()
        # The target's stdout/stderr is mostly libFuzzer's progress: keep it in a log file.
        log_path = artifacts / f"{name}.log"
        with open(log_path, "wb") as log:
            rc = subprocess.run(
                cmd, check=False, stdout=log, stderr=subprocess.STDOUT, timeout=seconds + 300
            ).returncode
        elapsed = time.monotonic() - t0
        log_text = log_path.read_text(errors="replace")
        # "Done N runs" is printed only by a run that ends cleanly; a finding stops at "#N ..." lines.
        runs = re.findall(r"Done (\d+) runs", log_text) or re.findall(r"^#(\d+)\s", log_text, re.MULTILINE)
        cov = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", log_text)
        found = sorted(p.name for p in artifacts.glob(f"{name}-*") if p.name != f"{name}.log")
        return {
            "target": name,
            "rc": rc,
            "executions": int(runs[-1]) if runs else None,
            "seconds": round(elapsed, 1),
            "coverage": int(cov[-1][0]) if cov else None,
            "features": int(cov[-1][1]) if cov else None,
            "corpus": int(cov[-1][2]) if cov else None,
            "findings": found,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=50, help="fuzzing time per target")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--artifacts", default=os.environ.get("AEGISFWD_FUZZ_ARTIFACTS", "fuzz-artifacts"))
    ap.add_argument("--summary", help="write the results as JSON here")
    args = ap.parse_args()
    artifacts = Path(args.artifacts).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.targets.split(","):
        r = run_target(name, args.seconds, artifacts)
        results.append(r)
        status = "ok" if r["rc"] == 0 and not r["findings"] else f"FINDING (rc {r['rc']}): {r['findings']}"
        print(
            f"fuzz {name}: {r['executions']} executions in {r['seconds']} s, coverage {r['coverage']}, "
            f"corpus {r['corpus']}: {status}",
            flush=True,
        )
        if status != "ok":
            print((artifacts / f"{name}.log").read_text(errors="replace")[-3000:], file=sys.stderr)
    if args.summary:
        Path(args.summary).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["rc"] == 0 and not r["findings"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
