"""Plot ``aegisfwd bench --json`` records: decisions/s by path and thread count, one panel per workload.

    aegisfwd bench --json > benchmarks/results.json
    python benchmarks/plot_results.py benchmarks/results.json -o benchmarks/throughput.png
    python benchmarks/plot_results.py benchmarks/results.json --markdown   # the README's tables

Bars are grouped by path, one bar per thread count, on a log scale; hatched bars are paths that compute
tier + location only (DuckDB, NumPy tier+location), not the full decision. The dashed line in each panel
is the single-thread floor (the NumPy copy of the bytes each decision reads and writes), recovered from
the records as ``decisions_per_s / fraction_of_floor``. A path that disagreed with the reference is
drawn in red and labelled: its speed means nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

PATH_ORDER = (
    "engine.decide_batch",
    "engine.decide[cython]",
    "engine.decide_indices[cython]",
    "engine.decide[pybind11]",
    "reference.decide",
    "evaluate",
    "peer.numpy",
    "peer.numpy[tier+location]",
    "peer.duckdb",
    "peer.python",
)


def plot(records: list[dict], output: Path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in records))
    threads = sorted({r["threads"] for r in records})
    colors = {
        t: plt.get_cmap("viridis")(0.15 + 0.7 * i / max(1, len(threads) - 1)) for i, t in enumerate(threads)
    }
    fig, axes = plt.subplots(len(workloads), 1, figsize=(11, 3.6 * len(workloads)), squeeze=False)
    width = 0.8 / len(threads)
    for ax, workload in zip(axes[:, 0], workloads, strict=True):
        rows = [r for r in records if r["workload"] == workload]
        by_path: dict[str, dict[int, dict]] = defaultdict(dict)
        for r in rows:
            by_path[r["path"]][r["threads"]] = r
        paths = [p for p in PATH_ORDER if p in by_path] + sorted(set(by_path) - set(PATH_ORDER))
        for i, path in enumerate(paths):
            for j, t in enumerate(threads):
                r = by_path[path].get(t)
                if r is None:
                    continue
                x = i - 0.4 + width * (j + 0.5)
                ok = r["agrees"]
                ax.bar(
                    x,
                    r["decisions_per_s"],
                    width,
                    color=colors[t] if ok else "red",
                    hatch="//" if r["computes"] != "full" else None,
                    edgecolor="white" if r["computes"] == "full" else "black",
                    label=f"{t} thread{'s' if t > 1 else ''}" if i == 0 or path == paths[0] else None,
                )
                if not ok:
                    ax.annotate("DISAGREES", (x, r["decisions_per_s"]), ha="center", va="bottom", color="red")
        floors = [r["decisions_per_s"] / r["fraction_of_floor"] for r in rows if r["threads"] == 1]
        if floors:
            floor = sorted(floors)[len(floors) // 2]
            ax.axhline(floor, color="grey", linestyle="--", linewidth=1)
            ax.annotate(
                f"floor (1 thread): {floor / 1e6:,.0f} M/s",
                (-0.45, floor),
                ha="left",
                va="top",
                fontsize=8,
                color="grey",
            )
        n = max(r["rows"] for r in rows)
        ax.set_title(f"{workload} ({n:,} requests; per-row paths on fewer)", fontsize=10)
        ax.set_yscale("log")
        ax.set_ylabel("decisions / s")
        ax.set_xticks(range(len(paths)))
        ax.set_xticklabels(paths, rotation=20, ha="right", fontsize=8)
        ax.grid(axis="y", which="major", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        seen = dict(zip(labels, handles, strict=True))
        if any(r["computes"] != "full" for r in rows):
            from matplotlib.patches import Patch

            seen["tier + location only"] = Patch(facecolor="white", edgecolor="black", hatch="//")
        ax.legend(seen.values(), seen.keys(), fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def markdown(records: list[dict]) -> str:
    """One Markdown table per workload, in the columns of ``aegisfwd bench``."""
    from aegisfwd.bench.runner import Record, fastest_peer_ratio, format_rate

    out = []
    for workload in dict.fromkeys(r["workload"] for r in records):
        rows = [Record(**r) for r in records if r["workload"] == workload]
        ratio = fastest_peer_ratio(rows)
        out.append(f"**{workload}**\n")
        out.append(
            "| path | threads | computes | rows | decisions/s | × fastest peer (same work) | of floor | agrees |"
        )
        out.append("|---|--:|---|--:|--:|--:|--:|:-:|")
        for i, r in enumerate(rows):
            x = f"{ratio[i]:.3g}×" if i in ratio else "-"
            out.append(
                f"| `{r.path}` | {r.threads} | {r.computes} | {r.rows:,} | {format_rate(r.decisions_per_s)} | {x} "
                f"| {r.fraction_of_floor:.2g} | {'yes' if r.agrees else '**NO**'} |"
            )
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="?", help="JSON from 'aegisfwd bench --json' (default: stdin)")
    parser.add_argument("-o", "--output", default="throughput.png", help="PNG to write")
    parser.add_argument("--title", help="figure title (e.g. the machine and date)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables instead of plotting")
    args = parser.parse_args(argv)
    text = Path(args.records).read_text() if args.records else sys.stdin.read()
    records = json.loads(text)
    if not records:
        parser.error("no records")
    if args.markdown:
        print(markdown(records))
        return 0
    plot(records, Path(args.output), args.title)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
