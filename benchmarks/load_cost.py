"""What opening a compiled file costs a process: ``load_compiled`` and ``Engine`` construction.

    python benchmarks/load_cost.py world.aegc [--rounds 15]

Writes the built-in world's compiled file to the path first when it does not exist (with the
installed aegisfwd, so two versions each get their own file), then times ``af.load_compiled(path)``
and ``af.Engine(c)`` ``--rounds`` times in this process and prints the best and the median of each
and of both together. To compare two versions, run it alternately from each one's environment.
"""

from __future__ import annotations

import argparse
import os
import time

import aegisfwd as af


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    if not os.path.exists(args.path):
        af.datasets.world(0).compile().save(args.path)
    load, build, both = [], [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        c = af.load_compiled(args.path)
        t1 = time.perf_counter()
        e = af.Engine(c)
        t2 = time.perf_counter()
        load.append(t1 - t0)
        build.append(t2 - t1)
        both.append(t2 - t0)
        del e, c

    def ms(v: list[float]) -> str:
        return f"best {min(v) * 1e3:.1f} ms, median {sorted(v)[len(v) // 2] * 1e3:.1f} ms"

    print(f"aegisfwd {af.__version__} from {os.path.dirname(af.__file__)}")
    print("load_compiled:", ms(load))
    print("Engine(c):    ", ms(build))
    print("both:         ", ms(both))


if __name__ == "__main__":
    main()
