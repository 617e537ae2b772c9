"""The advice on a terminal (rich tables)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..evaluation._summary import CONNECTION_LIMIT

if TYPE_CHECKING:  # pragma: no cover
    from ._advise import Advice

_SHORT = {
    "LOCAL": "LOCAL",
    "SAME_DC": "DC",
    "SAME_LOCATION": "LOC",
    "REMOTE": "REMOTE",
    "UNAVAILABLE": "UNAV",
}


def _pp(x: float) -> str:
    return f"{100 * x:+.2f}"


def _num(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:+,.{digits}f}"


def print_advice(advice: Advice, console: Any = None, *, top: int = 20) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    c = advice.counts
    unit = advice.distance_unit
    console.print(
        f"[bold]{c.rows_in:,}[/] rows read, {c.rows_decided:,} decided in scope ({len(advice.base):,} pools), "
        f"{sum(c.rows_rejected.values()):,} rejected, {c.rows_out_of_scope:,} out of scope; objective: "
        f"{advice.objective.metric} by {advice.objective.weight}; {advice.elapsed_s:.2f} s"
    )
    t = Table(title=f"Advised moves (tier shares in points of the pool's rows; distances in {unit})")
    for col, right in (
        ("rank", True),
        ("pool", False),
        ("step", True),
        ("move", False),
        ("tier shares", False),
        ("Δ mean", True),
        ("Δ p95", True),
        ("peak after", True),
    ):
        t.add_column(col, justify="right" if right else "left", overflow="fold")
    for m in advice.moves[:top]:
        d = m.share_delta()
        shares = ", ".join(f"{_SHORT[k]} {_pp(v)}" for k, v in d.items() if v) or "-"
        t.add_row(
            str(m.rank),
            m.pool,
            str(m.step),
            m.move.describe(),
            shares,
            _num(m.after.mean_distance - m.before.mean_distance),
            _num(m.after.p95_distance - m.before.p95_distance),
            f"{m.after.peak:,} ({100 * m.after.peak / CONNECTION_LIMIT:.1f}%)",
        )
    console.print(t)
    if len(advice.moves) > top:
        console.print(f"… and {len(advice.moves) - top:,} more moves (--top, --json)")
    if advice.gaps:
        what = "forwarded rows" if advice.objective.metric == "forwarded" else f"sum of weight × {unit}"
        g = Table(title=f"Greedy against the exact optimum (MILP; {what})")
        for col in ("pool", "before", "greedy", "optimum", "gap", "optimal locations"):
            g.add_column(col)
        for x in advice.gaps:
            g.add_row(
                x.pool,
                f"{x.base_value:,.3f}",
                f"{x.greedy_value:,.3f}",
                f"{x.optimal_value:,.3f}",
                f"{100 * x.gap:.2f}%",
                ", ".join(x.optimal_locations),
            )
        console.print(g)
    if advice.concurrency:
        a = Table(title="Concurrency above the threshold: addresses that would keep each under it")
        for col in ("pool", "egress IP", "origin", "peak", "addresses needed", "where"):
            a.add_column(col)
        for ca in advice.concurrency[:top]:
            a.add_row(
                ca.pool,
                ca.egress_ip,
                ca.origin,
                f"{ca.peak:,}",
                str(ca.addresses_needed),
                ", ".join(ca.locations),
            )
        console.print(a)
    if advice.unused_holders:
        u = Table(title=f"Holders that served no traffic ({len(advice.unused_holders):,})")
        for col in ("pool", "address", "location"):
            u.add_column(col)
        for uh in advice.unused_holders[:top]:
            u.add_row(uh.pool, uh.address, uh.location)
        console.print(u)
