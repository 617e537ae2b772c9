"""Cost of one decision through the C ABI, beside the C++ core's own scalar call and Python's.

    python benchmarks/capi/run_capi_bench.py [--rows 20000] [--rounds 7] [--json out.json]

Builds bench_capi.cpp (the core from this repository's cpp/ sources with the wheel's flags, the C
ABI from the *installed* libaegisfwd via pkg-config), runs it on the compiled world and 20,000
distinct world requests, then times ``af.Engine.decide`` (the Python scalar call) on the same rows.
The C++ program interleaves its rounds; each figure is timed in chunks of 2,000 rows with the
fastest round per chunk (an undisturbed pass on a shared machine; medians are in the JSON too);
every ratio is from this one run.
Figures and machine are recorded in docs/c-api.md and benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import aegisfwd as af
from aegisfwd import capi

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# Per-file flags of the per-ISA kernels, as CMakeLists.txt sets them.
ISA_FLAGS = {
    "kernel_avx2.cpp": ["-mavx2"],
    "kernel_avx512.cpp": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2"],
}
CXXFLAGS = ["-std=c++17", "-O3", "-DNDEBUG", "-fPIC"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build(out_dir: Path) -> Path:
    cxx = os.environ.get("CXX", "c++")
    env = {**os.environ, "PKG_CONFIG_PATH": str(capi.pkgconfig_dir())}
    libs = shlex.split(
        subprocess.run(
            ["pkg-config", "--cflags", "--libs", "aegisfwd"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    sources = sorted((REPO / "cpp" / "src").glob("*.cpp"))

    def compile_one(src: Path) -> Path:
        obj = out_dir / (src.stem + ".o")
        if not obj.exists() or obj.stat().st_mtime < src.stat().st_mtime:
            cmd = [
                cxx,
                *CXXFLAGS,
                *ISA_FLAGS.get(src.name, []),
                f"-I{REPO / 'cpp' / 'include'}",
                "-c",
                str(src),
                "-o",
                str(obj),
            ]
            subprocess.run(cmd, check=True)
        return obj

    with ThreadPoolExecutor(max_workers=2) as pool:
        objects = list(pool.map(compile_one, sources))
    exe = out_dir / "bench_capi"
    cmd = [
        cxx,
        *CXXFLAGS,
        f"-I{REPO / 'cpp' / 'include'}",
        str(HERE / "bench_capi.cpp"),
        *map(str, objects),
        "-o",
        str(exe),
        *libs,
        "-lpthread",
    ]
    subprocess.run(cmd, check=True)
    return exe


def python_scalar_ns(
    engine: af.Engine, req: dict[str, np.ndarray], rounds: int, chunk: int = 2000
) -> tuple[float, float]:
    """ns per ``af.Engine.decide``: one request repeated, and the distinct rows; timed in chunks,
    the fastest round per chunk (as bench_capi.cpp does)."""
    rows = list(
        zip(
            req["server"].tolist(),
            req["pool"].tolist(),
            req["family"].tolist(),
            req["flow"].tolist(),
            strict=True,
        )
    )
    decide = engine.decide
    one = rows[0]
    chunks = [rows[k : k + chunk] for k in range(0, len(rows), chunk)]
    best_distinct = [float("inf")] * len(chunks)
    best_one = [float("inf")] * len(chunks)
    for _ in range(rounds):
        for c, part in enumerate(chunks):
            t0 = time.perf_counter_ns()
            for s, p, f, fl in part:
                decide(s, p, f, fl)
            best_distinct[c] = min(best_distinct[c], time.perf_counter_ns() - t0)
            t0 = time.perf_counter_ns()
            for _ in part:
                decide(*one)
            best_one[c] = min(best_one[c], time.perf_counter_ns() - t0)
    return sum(best_one) / len(rows), sum(best_distinct) / len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--build-dir", type=Path, default=Path(tempfile.gettempdir()) / "aegisfwd-capi-bench")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    args.build_dir.mkdir(parents=True, exist_ok=True)
    exe = build(args.build_dir)

    world = af.datasets.world()
    world_file = args.build_dir / "world.aegc"
    world.compile().save(world_file)
    req = af.datasets.requests(world, args.rows, seed=1).as_dict()
    req_file = args.build_dir / "requests.bin"
    with open(req_file, "wb") as f:
        f.write(struct.pack("<Q", args.rows))
        f.writelines(
            np.ascontiguousarray(req[name], dtype=dtype).tobytes()
            for name, dtype in (("server", "<i4"), ("pool", "<i4"), ("family", "u1"), ("flow", "<u8"))
        )

    run = subprocess.run(
        [str(exe), str(world_file), str(req_file), str(args.rounds)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures = json.loads(run.stdout)
    engine = af.Engine(af.load_compiled(world_file))
    py_one, py_distinct = python_scalar_ns(engine, req, max(3, args.rounds // 4))
    figures.update(
        python_one_ns=round(py_one, 1),
        python_distinct_ns=round(py_distinct, 1),
        cpu=cpu_model(),
        cores=os.cpu_count(),
        command=" ".join([Path(sys.executable).name, *sys.argv]),
    )
    ratios = {
        "capi/core one request": figures["capi_one_ns"] / figures["core_one_ns"],
        "capi/core 20k distinct": figures["capi_distinct_ns"] / figures["core_distinct_ns"],
        "capi/core batch per row": figures["capi_batch_row_ns"] / figures["core_batch_row_ns"],
        "python/capi one request": figures["python_one_ns"] / figures["capi_one_ns"],
        "python/capi 20k distinct": figures["python_distinct_ns"] / figures["capi_distinct_ns"],
    }
    figures["ratios"] = {k: round(v, 3) for k, v in ratios.items()}
    print(
        f"{figures['cpu']} ({figures['cores']} cores), kernel {figures['isa']}, {figures['rows']:,} requests"
    )
    print(f"{'ns per decision':<28}{'one request':>14}{'20k distinct':>14}{'batch, per row':>16}")
    print(
        f"{'C++ core (Engine::decide)':<28}{figures['core_one_ns']:>14.1f}{figures['core_distinct_ns']:>14.1f}"
        f"{figures['core_batch_row_ns']:>16.1f}"
    )
    print(
        f"{'C ABI (aegisfwd_decide)':<28}{figures['capi_one_ns']:>14.1f}{figures['capi_distinct_ns']:>14.1f}"
        f"{figures['capi_batch_row_ns']:>16.1f}"
    )
    print(
        f"{'Python (af.Engine.decide)':<28}{figures['python_one_ns']:>14.1f}{figures['python_distinct_ns']:>14.1f}"
        f"{'':>16}"
    )
    for name, value in ratios.items():
        print(f"  {name}: {value:.3f}x")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
