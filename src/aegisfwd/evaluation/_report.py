"""Reports: ``summary.json``, a self-contained ``report.html`` (plots as embedded PNG) and rich tables.

The HTML page loads nothing from outside and runs no script: every plot is a base64 PNG drawn with
matplotlib's Agg canvas (no pyplot global state, so reports can be drawn from threads).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._egress_check import html_section, print_check
from ._summary import CONNECTION_LIMIT, TIERS, Summary

TIER_COLORS = {
    "LOCAL": "#2ca02c",
    "SAME_DC": "#98df8a",
    "SAME_LOCATION": "#1f77b4",
    "REMOTE": "#ff7f0e",
    "UNAVAILABLE": "#d62728",
}


# ---------------------------------------------------------------------------------------------
# Plot helpers
# ---------------------------------------------------------------------------------------------
def _figure(w: float = 8.0, h: float = 3.6, *, left: float = 0.1, bottom: float = 0.15, wspace: float = 0.3) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    # Fixed margins rather than tight_layout, which draws every figure twice.
    fig.subplots_adjust(left=left, right=0.97, bottom=bottom, top=0.88, wspace=wspace)
    return fig


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _stacked(rows: list[tuple[str, dict[str, int]]], title: str) -> str:
    fig = _figure(9, max(2.5, 0.28 * len(rows) + 1.2), left=0.2, bottom=0.6 / max(2.5, 0.28 * len(rows) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    labels = [k for k, _ in rows][::-1]
    left = [0.0] * len(rows)
    for t in TIERS:
        vals = [v.get(t, 0) / max(sum(v.values()), 1) for _, v in rows][::-1]
        ax.barh(labels, vals, left=left, color=TIER_COLORS[t], label=t)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of rows, {title}")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=7, ncol=len(TIERS), frameon=False)
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


def _tier_bar(summary: Summary) -> str:
    fig = _figure(7, 3)
    ax = fig.add_subplot(1, 1, 1)
    vals = [summary.tiers.get(t, 0) for t in TIERS]
    ax.bar(TIERS, vals, color=[TIER_COLORS[t] for t in TIERS])
    total = max(sum(vals), 1)
    for x, v in enumerate(vals):
        ax.text(x, v, f"{100 * v / total:.1f}%", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("rows")
    ax.set_title("Tier mix")
    return _png(fig)


def _load_plot(top: list[tuple[str, int]], counts: dict[str, int], what: str) -> str:
    import numpy as np

    fig = _figure(10, 3.4, left=0.16, wspace=0.35)
    ax1 = fig.add_subplot(1, 2, 1)
    ax1.barh([k for k, _ in top][::-1], [v for _, v in top][::-1], color="#1f77b4")
    ax1.set_title(f"Top {len(top)} {what} by rows")
    ax1.tick_params(axis="y", labelsize=7)
    ax2 = fig.add_subplot(1, 2, 2)
    v = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
    if v.shape[0]:
        ax2.hist(v, bins=min(50, max(5, int(math.sqrt(v.shape[0])))), color="#7f7f7f")
    ax2.set_title(f"Rows per {what.removesuffix('s')} (distribution)")
    ax2.set_xlabel("rows")
    ax2.set_ylabel(what)
    return _png(fig)


def _flow_map(summary: Summary, top: int) -> str | None:
    coords = summary.coords
    flows = summary.top_flows(top)
    if not coords:
        return None
    fig = _figure(10, 5)
    ax = fig.add_subplot(1, 1, 1)
    lats = [c[0] for c in coords.values()]
    lons = [c[1] for c in coords.values()]
    ax.scatter(lons, lats, s=6, color="#999999", zorder=1, label="locations")
    egress: dict[str, int] = {}
    for loc, c in summary.flows.items():
        egress[loc[1]] = egress.get(loc[1], 0) + c
    if egress:
        big = max(egress.values())
        xs = [coords[k][1] for k in egress if k in coords]
        ys = [coords[k][0] for k in egress if k in coords]
        ss = [8 + 120 * egress[k] / big for k in egress if k in coords]
        ax.scatter(xs, ys, s=ss, color="#1f77b4", alpha=0.5, zorder=2, label="egress rows")
    if flows:
        heaviest = max(f["rows"] for f in flows)
        for f in flows:
            a, b = coords.get(f["ingress_location"]), coords.get(f["egress_location"])
            if a is None or b is None:
                continue
            ax.plot([a[1], b[1]], [a[0], b[0]], color="#ff7f0e", alpha=0.8, zorder=3,
                    linewidth=0.5 + 4 * f["rows"] / heaviest)
            ax.annotate("", xy=(b[1], b[0]), xytext=(a[1], a[0]),
                        arrowprops={"arrowstyle": "->", "color": "#ff7f0e", "lw": 0.8})
    ax.set_xlim(-180, 180)
    ax.set_ylim(-70, 80)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(f"Top {len(flows)} forwarding flows (ingress → egress location), equirectangular")
    ax.legend(loc="lower left", fontsize=7)
    ax.grid(alpha=0.2)
    return _png(fig)


def _concurrency_plot(peaks: list[dict[str, Any]], top: int) -> str | None:
    if not peaks:
        return None
    rows = peaks[:top]
    h = max(2.5, 0.28 * len(rows) + 1.2)
    fig = _figure(10, h, left=0.38, bottom=0.6 / h)
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{p['egress_ip']} → {p['origin']}" for p in rows][::-1]
    vals = [p["peak"] for p in rows][::-1]
    ax.barh(labels, vals, color=["#d62728" if v > CONNECTION_LIMIT else "#1f77b4" for v in vals])
    ax.axvline(CONNECTION_LIMIT, color="#d62728", linestyle="--", label=f"limit {CONNECTION_LIMIT:,}")
    ax.set_xscale("log")
    ax.set_xlabel("peak concurrent origin connections (log scale)")
    ax.legend(loc="lower right", fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# HTML helpers
# ---------------------------------------------------------------------------------------------
def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{x:,.3f}" if abs(x) < 1000 else f"{x:,.1f}"
    if isinstance(x, int):
        return f"{x:,}"
    return _e(x)


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_num(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
td,th{border:1px solid #ddd;padding:.2em .6em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}img{max-width:100%}.note{color:#666;font-size:.85em}
.bad{color:#d62728;font-weight:bold}
"""


def _page(title: str, meta: dict[str, Any], sections: list[tuple[str, str, str]]) -> str:
    nav = " · ".join(f'<a href="#{sid}">{_e(name)}</a>' for sid, name, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{_e(name)}</h2>{content}</section>' for sid, name, content in sections)
    metas = "".join(f"<tr><td>{_e(k)}</td><td>{_num(v)}</td></tr>" for k, v in meta.items())
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class=\"note\">generated {now}</p>"
        f"<table class=\"meta\">{metas}</table><nav>{nav}</nav>{body}</body></html>"
    )


# ---------------------------------------------------------------------------------------------
# Evaluation report
# ---------------------------------------------------------------------------------------------
def _sections(s: Summary, top: int, prefix: str = "", only: set[str] | None = None) -> list[tuple[str, str, str]]:
    """The report's sections as (id, title, HTML); ``only`` draws just those ids (unprefixed)."""
    unit = s.distance_unit
    out: list[tuple[str, str, str]] = []

    def want(sid: str) -> bool:
        return only is None or sid in only

    if want("totals"):
        totals = [
            ["rows in", s.rows_in],
            ["rows decided", s.rows_decided],
            ["rows rejected", s.rows_rejected],
            ["forwarded rows (not LOCAL)", s.forwarded_rows],
            [f"mean distance ingress → egress ({unit})", s.mean_distance],
            [f"total added distance ({unit})", s.distance_sum],
            ["rows whose colo had no up server (ingress among all its servers)", s.ingress_fallback_rows],
            ["rows with timing (for concurrency)", s.timed_rows],
        ]
        errs = "".join(f"<li class=\"bad\">{_e(e)}</li>" for e in s.input_errors)
        out.append((prefix + "totals", "Totals", _table(["", "value"], totals) + (f"<ul>{errs}</ul>" if errs else "")))
    if want("rejects"):
        rej = sorted(s.rejects.items(), key=lambda kv: -kv[1])
        out.append((prefix + "rejects", "Rejected rows by reason",
                    _table(["reason", "rows", "share of rows in"], [[k, v, v / max(s.rows_in, 1)] for k, v in rej])
                    if rej else '<p class="note">no rejected rows</p>'))
    if want("tier-mix"):
        share = s.tier_share()
        out.append((prefix + "tier-mix", "Tier mix",
                    _img(_tier_bar(s), "tier mix")
                    + _table(["tier", "rows", "share"], [[t, s.tiers.get(t, 0), share[t]] for t in TIERS])))
    if want("tier-by-location"):
        locs = s.top_locations(top)
        loc_rows = [[k] + [v.get(t, 0) for t in TIERS] + [sum(v.values())] for k, v in locs]
        out.append((prefix + "tier-by-location", f"Tier mix per ingress location (top {len(locs)} by rows)",
                    (_img(_stacked(locs, "per ingress location"), "tier mix per ingress location") if locs else "")
                    + _table(["location", *TIERS, "rows"], loc_rows)))
    if want("tier-by-pool"):
        pools = s.top_pools(top)
        pool_rows = [[k] + [v.get(t, 0) for t in TIERS] + [sum(v.values())] for k, v in pools]
        out.append((prefix + "tier-by-pool", f"Tier mix per pool (top {len(pools)} by rows)",
                    (_img(_stacked(pools, "per pool"), "tier mix per pool") if pools else "")
                    + _table(["pool", *TIERS, "rows"], pool_rows)))
    if want("flows"):
        flows = s.top_flows(top)
        out.append((prefix + "flows", f"Top forwarding flows between locations (top {len(flows)})",
                    _table(["ingress location", "egress location", "rows", f"distance ({unit})",
                            f"added distance ({unit})"],
                           [[f["ingress_location"], f["egress_location"], f["rows"], f["distance"], f["added_distance"]]
                            for f in flows])
                    if flows else '<p class="note">no row was forwarded to another location</p>'))
    if want("flow-map"):
        m = _flow_map(s, top)
        out.append((prefix + "flow-map", "Map of forwarding flows",
                    _img(m, "map of forwarding flows") if m
                    else '<p class="note">no coordinates in the topology (distance matrix only)</p>'))
    for sid, what, counts, topn in (
        ("load-servers", "egress servers", s.egress_servers, s.top_egress_servers(top)),
        ("load-ips", "egress IPs", s.egress_ips, s.top_egress_ips(top)),
    ):
        if not want(sid):
            continue
        st = s.load_stats(counts)
        content = (_img(_load_plot(topn, counts, what), f"load per {what}") if counts else "") + _table(
            ["statistic", "rows"], [[k, v] for k, v in st.items()]
        ) + _table([what[:-1], "rows"], [list(x) for x in topn])
        out.append((prefix + sid, f"Load per {what[:-1]}", content))
    if want("concurrency"):
        n_keys, over = s.concurrency.counts()
        peaks = s.concurrency.peaks(top)
        if peaks:
            plot = _concurrency_plot(peaks, top)
            content = (
                f"<p>Peak concurrent origin connections per (egress IP, origin IP:port), from each row's start "
                f"time and origin duration at {s.concurrency.resolution_ms} ms resolution, against the documented "
                f"limit of {CONNECTION_LIMIT:,} per egress IP per origin IP:port. "
                f"<span class=\"{'bad' if over else ''}\">{over} of {n_keys:,} pairs over the limit.</span> "
                "Sampled logs show the sampled rows only.</p>"
                + (_img(plot, "peak concurrent connections") if plot else "")
                + _table(["egress IP", "origin", "peak", "share of limit", "first at"],
                         [[p["egress_ip"], p["origin"], p["peak"], p["share_of_limit"], p["at"]] for p in peaks])
            )
        else:
            content = ('<p class="note">the log has no usable start timestamps and origin durations '
                       "(EdgeStartTimestamp with OriginResponseDurationMs or OriginResponseTime)</p>")
        out.append((prefix + "concurrency", "Concurrent connections per egress IP and origin", content))
    check = html_section(s.egress_check, top, _table) if want("egress-check") else None
    if check is not None:
        out.append((prefix + check[0], check[1], check[2]))
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def _clean(o: Any) -> Any:
    if isinstance(o, float):
        return None if math.isnan(o) or math.isinf(o) else o
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def write_report(summary: Summary, directory: str | Path, *, top: int = 20, title: str = "aegisfwd evaluation",
                 meta: dict[str, Any] | None = None) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta or {}, "summary": summary.to_dict(top)}
    (d / "summary.json").write_text(json.dumps(_clean(doc), indent=1, default=_json_default), encoding="utf-8")
    page = _page(title, meta or {}, _sections(summary, top))
    out = d / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


# ---------------------------------------------------------------------------------------------
# Comparison report
# ---------------------------------------------------------------------------------------------
def _compare_sections(c: Any, top: int) -> list[tuple[str, str, str]]:
    d = c.diff
    unit = d.distance_unit
    out = []
    totals = [
        ["rows in", d.rows_in],
        ["rows decided under both", d.rows_both],
        ["rows rejected under A", d.rejected_a],
        ["rows rejected under B", d.rejected_b],
        ["rows whose egress location moved", d.moved_location],
        ["rows whose egress server moved", d.moved_server],
        ["rows whose egress IP changed", d.moved_ip],
        ["rows that became UNAVAILABLE", d.became_unavailable],
        ["rows that became available", d.became_available],
        [f"distance A ({unit}, rows with an egress under both)", d.distance_a],
        [f"distance B ({unit})", d.distance_b],
        [f"net change B − A ({unit})", d.net_distance_change],
        [f"distance saved ({unit}) on {d.rows_closer:,} rows", d.distance_saved],
        [f"distance added ({unit}) on {d.rows_farther:,} rows", d.distance_added],
    ]
    out.append(("compare-totals", "What changed (A → B)", _table(["", "value"], totals)))
    tc = d.tier_change()
    fig = _figure(8, 3.2, left=0.12)
    ax = fig.add_subplot(1, 1, 1)
    xs = range(len(TIERS))
    ax.bar([x - 0.2 for x in xs], [tc[t]["a"] for t in TIERS], width=0.4, label="A", color="#7f7f7f")
    ax.bar([x + 0.2 for x in xs], [tc[t]["b"] for t in TIERS], width=0.4, label="B", color="#1f77b4")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(TIERS)
    ax.set_ylabel("rows")
    ax.legend()
    ax.set_title("Tier mix, A vs B (rows decided under both)")
    out.append(("tier-change", "Tier mix change",
                _img(_png(fig), "tier mix change")
                + _table(["tier", "A", "B", "change"], [[t, tc[t]["a"], tc[t]["b"], tc[t]["change"]] for t in TIERS])))
    matrix = [[ta] + [d.transitions.get((ta, tb), 0) for tb in TIERS] for ta in TIERS]
    out.append(("transitions", "Tier transitions (rows: A, columns: B)", _table(["A \\ B", *TIERS], matrix)))
    flows = d.top_changed_flows(top)
    out.append(("changed-flows", f"Flows that changed (top {len(flows)})",
                _table(["ingress location", "egress A", "egress B", "rows", f"distance change ({unit})"],
                       [[f["ingress_location"], f["egress_a"], f["egress_b"], f["rows"], f["distance_change"]] for f in flows])
                if flows else '<p class="note">no egress location moved</p>'))
    pools = sorted(d.moved_by_pool.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    out.append(("moved-pools", f"Pools with the most moved rows (top {len(pools)})",
                _table(["pool", "rows whose egress server moved"], [list(p) for p in pools])
                if pools else '<p class="note">no row moved</p>'))
    return out


def write_compare_report(c: Any, directory: str | Path, *, top: int = 20, title: str = "aegisfwd comparison") -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = {"source": c.source, "topology A": c.topologies[0], "topology B": c.topologies[1],
            "elapsed_s": round(c.elapsed_s, 3)}
    doc = {"meta": meta, "diff": c.diff.to_dict(top), "a": c.a.to_dict(top), "b": c.b.to_dict(top)}
    (d / "summary.json").write_text(json.dumps(_clean(doc), indent=1, default=_json_default), encoding="utf-8")
    sections = _compare_sections(c, top)
    sections += [(sid, f"A: {name}", content) for sid, name, content in _sections(c.a, top, "a-", {"tier-mix", "flows"})]
    sections += [(sid, f"B: {name}", content) for sid, name, content in _sections(c.b, top, "b-", {"tier-mix", "flows"})]
    page = _page(title, meta, sections)
    out = d / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


# ---------------------------------------------------------------------------------------------
# Terminal
# ---------------------------------------------------------------------------------------------
def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "–" if math.isnan(x) else (f"{x:,.3f}" if abs(x) < 1000 else f"{x:,.1f}")
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _rich_table(title: str, headers: list[str], rows: list[list[Any]]) -> Any:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for k, h in enumerate(headers):
        t.add_column(h, justify="left" if k == 0 else "right")
    for r in rows:
        t.add_row(*[_fmt(c) for c in r])
    return t


def print_summary(s: Summary, console: Any = None, *, top: int = 10, meta: dict[str, Any] | None = None) -> None:
    from rich.console import Console

    con = console or Console()
    unit = s.distance_unit
    rows = [[k, v] for k, v in (meta or {}).items()] + [
        ["rows in", s.rows_in], ["rows decided", s.rows_decided], ["rows rejected", s.rows_rejected],
        ["forwarded rows (not LOCAL)", s.forwarded_rows], [f"mean distance ({unit})", s.mean_distance],
        ["colo with no up server (fallback)", s.ingress_fallback_rows],
    ]
    con.print(_rich_table("Totals", ["", "value"], rows))
    for e in s.input_errors:
        con.print(f"[red]input error:[/red] {e}")
    if s.rejects:
        con.print(_rich_table("Rejected rows", ["reason", "rows"], sorted(([k, v] for k, v in s.rejects.items()), key=lambda r: -r[1])))
    share = s.tier_share()
    con.print(_rich_table("Tier mix", ["tier", "rows", "share"], [[t, s.tiers.get(t, 0), share[t]] for t in TIERS]))
    con.print(_rich_table(f"Tier mix per ingress location (top {top})", ["location", *TIERS, "rows"],
                          [[k] + [v.get(t, 0) for t in TIERS] + [sum(v.values())] for k, v in s.top_locations(top)]))
    con.print(_rich_table(f"Tier mix per pool (top {top})", ["pool", *TIERS, "rows"],
                          [[k] + [v.get(t, 0) for t in TIERS] + [sum(v.values())] for k, v in s.top_pools(top)]))
    con.print(_rich_table(f"Top forwarding flows (top {top})", ["ingress", "egress", "rows", f"distance ({unit})", f"added ({unit})"],
                          [[f["ingress_location"], f["egress_location"], f["rows"], f["distance"], f["added_distance"]]
                           for f in s.top_flows(top)]))
    for what, counts, topn in (("egress server", s.egress_servers, s.top_egress_servers(top)),
                               ("egress IP", s.egress_ips, s.top_egress_ips(top))):
        st = s.load_stats(counts)
        con.print(_rich_table(f"Load per {what} (top {top}; {st['count']:,} in use, max/mean {_fmt(st['max_over_mean'])})",
                              [what, "rows"], [list(x) for x in topn]))
    peaks = s.concurrency.peaks(top)
    if peaks:
        over = s.concurrency.counts()[1]
        con.print(_rich_table(
            f"Peak concurrent connections per egress IP and origin (limit {CONNECTION_LIMIT:,}; {over} over)",
            ["egress IP", "origin", "peak", "share of limit", "first at"],
            [[p["egress_ip"], p["origin"], p["peak"], p["share_of_limit"], p["at"]] for p in peaks]))
    print_check(s.egress_check, con, top, _rich_table)


def print_comparison(c: Any, console: Any = None, *, top: int = 10) -> None:
    from rich.console import Console

    con = console or Console()
    d = c.diff
    unit = d.distance_unit
    con.print(_rich_table("What changed (A → B)", ["", "value"], [
        ["topology A", c.topologies[0]], ["topology B", c.topologies[1]],
        ["rows in", d.rows_in], ["decided under both", d.rows_both],
        ["rejected under A", d.rejected_a], ["rejected under B", d.rejected_b],
        ["egress location moved", d.moved_location], ["egress server moved", d.moved_server],
        ["egress IP changed", d.moved_ip], ["became UNAVAILABLE", d.became_unavailable],
        ["became available", d.became_available],
        [f"net distance change B − A ({unit})", d.net_distance_change],
        [f"distance saved ({unit})", d.distance_saved], [f"distance added ({unit})", d.distance_added],
    ]))
    tc = d.tier_change()
    con.print(_rich_table("Tier mix change", ["tier", "A", "B", "change"], [[t, tc[t]["a"], tc[t]["b"], tc[t]["change"]] for t in TIERS]))
    con.print(_rich_table(f"Flows that changed (top {top})", ["ingress", "egress A", "egress B", "rows", f"distance change ({unit})"],
                          [[f["ingress_location"], f["egress_a"], f["egress_b"], f["rows"], f["distance_change"]]
                           for f in d.top_changed_flows(top)]))
