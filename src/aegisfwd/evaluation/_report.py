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
from ._summary import CONNECTION_LIMIT, REASON_HELP, TIERS, WARNING_HELP, Summary

# Okabe & Ito's palette, distinguishable with every common colour-vision deficiency.
TIER_COLORS = {
    "LOCAL": "#009E73",  # bluish green
    "SAME_DC": "#56B4E9",  # sky blue
    "SAME_LOCATION": "#0072B2",  # blue
    "REMOTE": "#E69F00",  # orange
    "UNAVAILABLE": "#D55E00",  # vermillion
}
FLOW_COLOR = TIER_COLORS["REMOTE"]
LAND_COLOR = "#e6e6e6"
NEUTRAL = "#555555"


# ---------------------------------------------------------------------------------------------
# Plot helpers
# ---------------------------------------------------------------------------------------------
def _figure(
    w: float = 8.0,
    h: float = 3.6,
    *,
    left: float = 0.1,
    bottom: float = 0.15,
    wspace: float = 0.3,
    top: float = 0.88,
) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    # Fixed margins rather than tight_layout, which draws every figure twice.
    fig.subplots_adjust(left=left, right=0.97, bottom=bottom, top=top, wspace=wspace)
    return fig


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _count_axis(axis: Any, nbins: int | None = None) -> None:
    """A linear axis of counts: integer ticks only, thousands separated; ``nbins``: at most that
    many intervals (a narrow axis of five-digit counts needs few, or its labels run together)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=nbins or "auto", integer=True, min_n_ticks=1))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v):,}"))


def _log_count_axis(axis: Any, decades: float = 3.0) -> None:
    """A log axis of counts: ticks at 1, 10, 100, … (also 2 and 5 × when it spans fewer than
    three decades), written as integers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if decades >= 3 else (1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{round(v):,}" if v >= 1 else ""))
    axis.set_minor_formatter(NullFormatter())


def _stacked(rows: list[tuple[str, dict[str, int]]], title: str) -> str:
    h = max(2.5, 0.28 * len(rows) + 1.2)
    fig = _figure(9, h, left=0.2, bottom=0.6 / h)
    ax = fig.add_subplot(1, 1, 1)
    labels = [k for k, _ in rows][::-1]
    left = [0.0] * len(rows)
    for t in TIERS:
        vals = [v.get(t, 0) / max(sum(v.values()), 1) for _, v in rows][::-1]
        ax.barh(labels, vals, left=left, color=TIER_COLORS[t], label=t)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlim(0, 1)
    from matplotlib.ticker import PercentFormatter

    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
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
    _count_axis(ax.yaxis)
    ax.set_ylim(0, max(max(vals), 1) * 1.15)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title("Tier mix")
    return _png(fig)


def _load_plot(top: list[tuple[str, int]], counts: dict[str, int], what: str) -> str:
    """Left: the busiest by rows. Right: every one ranked, rows on a log axis, so that a few hot
    servers and a long tail both show (a histogram puts nearly all of them in one bar)."""
    import numpy as np

    fig = _figure(10, 3.4, left=0.16, wspace=0.35, bottom=0.17)
    ax1 = fig.add_subplot(1, 2, 1)
    ax1.barh([k for k, _ in top][::-1], [v for _, v in top][::-1], color=TIER_COLORS["SAME_LOCATION"])
    ax1.set_title(f"Top {len(top)} {what} by rows", fontsize=10)
    ax1.tick_params(axis="y", labelsize=7)
    _count_axis(ax1.xaxis, nbins=4)
    ax2 = fig.add_subplot(1, 2, 2)
    v = np.sort(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))[::-1]
    if v.shape[0]:
        rank = np.arange(1, v.shape[0] + 1)
        ax2.plot(rank, v, color=NEUTRAL, linewidth=1.2, drawstyle="steps-post")
        ax2.fill_between(rank, v, step="post", color=NEUTRAL, alpha=0.15)
        med = float(np.median(v))
        ax2.axhline(med, color=TIER_COLORS["REMOTE"], linestyle="--", linewidth=1, label=f"median {med:,.0f}")
        # log axes only where the values span orders of magnitude; else they hide the labels
        if v[0] > 20 * max(v[-1], 1):
            ax2.set_yscale("log")
            _log_count_axis(ax2.yaxis, float(np.log10(v[0] / max(v[-1], 1))))
            ax2.set_ylabel("rows (log)")
        else:
            ax2.set_ylim(0, v[0] * 1.1)
            _count_axis(ax2.yaxis)
            ax2.set_ylabel("rows")
        if v.shape[0] > 50:
            ax2.set_xscale("log")
            _log_count_axis(ax2.xaxis, float(np.log10(v.shape[0])))
        else:
            _count_axis(ax2.xaxis)
        ax2.legend(loc="upper right", fontsize=7)
    ax2.set_title(f"Rows per {what.removesuffix('s')}, all {len(counts):,} ranked", fontsize=10)
    ax2.set_xlabel(f"rank (1 = busiest {what.removesuffix('s')})")
    return _png(fig)


def _map_extent(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """(lon0, lon1, lat0, lat1) around ``points`` (lon, lat) with a margin, at least 50° x 25°,
    widened to the figure's 2:1 shape; the whole world when they spread that far anyway."""
    if not points:
        return -180.0, 180.0, -58.0, 84.0
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    lon0, lon1, lat0, lat1 = min(lons), max(lons), min(lats), max(lats)
    w = max(lon1 - lon0, 50.0) * 1.25
    h = max(lat1 - lat0, 25.0) * 1.3
    w, h = max(w, 2 * h), max(h, w / 2)
    cx, cy = (lon0 + lon1) / 2, (lat0 + lat1) / 2
    if w >= 300:
        return -180.0, 180.0, -58.0, 84.0
    x0 = min(max(cx - w / 2, -180.0), 180.0 - w)
    y0 = min(max(cy - h / 2, -85.0), 85.0 - h)
    return x0, x0 + w, y0, y0 + h


def _flow_map(summary: Summary, top: int) -> str | None:
    """Forwarding flows on the world's coastlines (Natural Earth 110m, shipped with the package):
    an arrow from ingress to egress location, as wide as its share of rows; a dot at both ends of
    every flow, the busiest hubs labelled with their id and rows; locations without flows as small
    grey dots."""
    from matplotlib.patches import FancyArrowPatch, Polygon

    from ..land import land_rings

    coords = summary.coords  # id -> (lat, lon)
    flows = [
        f
        for f in summary.top_flows(top)
        if f["ingress_location"] in coords and f["egress_location"] in coords
    ]
    if not coords:
        return None
    fig = _figure(11, 5.8, left=0.04, bottom=0.06, top=0.92)
    ax = fig.add_subplot(1, 1, 1)
    for ring in land_rings():
        ax.add_patch(
            Polygon(ring, closed=True, facecolor=LAND_COLOR, edgecolor="#c8c8c8", linewidth=0.4, zorder=0)
        )
    pts = [(coords[f[k]][1], coords[f[k]][0]) for f in flows for k in ("ingress_location", "egress_location")]
    x0, x1, y0, y1 = _map_extent(pts)
    ax.scatter(
        [c[1] for c in coords.values()],
        [c[0] for c in coords.values()],
        s=4,
        color="#9a9a9a",
        zorder=1,
        label="locations",
    )
    inbound: dict[str, int] = {}
    outbound: dict[str, int] = {}
    for f in flows:
        inbound[f["egress_location"]] = inbound.get(f["egress_location"], 0) + f["rows"]
        outbound[f["ingress_location"]] = outbound.get(f["ingress_location"], 0) + f["rows"]
    if flows:
        import math as _m

        heaviest = max(f["rows"] for f in flows)
        for f in sorted(flows, key=lambda f: f["rows"]):  # heaviest drawn last, on top
            (alat, alon), (blat, blon) = coords[f["ingress_location"]], coords[f["egress_location"]]
            width = 0.8 + 5.0 * _m.sqrt(f["rows"] / heaviest)
            ax.add_patch(
                FancyArrowPatch(
                    (alon, alat),
                    (blon, blat),
                    connectionstyle="arc3,rad=0.18",
                    arrowstyle="-|>",
                    mutation_scale=8 + 2.5 * width,
                    linewidth=width,
                    color=FLOW_COLOR,
                    alpha=0.85,
                    zorder=3,
                    shrinkA=3,
                    shrinkB=4,
                )
            )
        # Every flow's two ends get a dot (a line that ends in nothing reads as a drawing error);
        # only the 12 busiest are labelled, so the labels stay readable.
        ends = sorted(set(inbound) | set(outbound), key=lambda k: -(inbound.get(k, 0) + outbound.get(k, 0)))
        hubs = ends[:12]
        for k in ends:
            lat, lon = coords[k]
            is_egress = inbound.get(k, 0) >= outbound.get(k, 0)
            size = 30 + 220 * (inbound.get(k, 0) + outbound.get(k, 0)) / (2 * heaviest)
            ax.scatter(
                [lon],
                [lat],
                s=size,
                color=TIER_COLORS["SAME_LOCATION"] if is_egress else NEUTRAL,
                edgecolor="white",
                linewidth=0.8,
                zorder=4,
            )
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        _label_hubs(
            ax,
            [
                (k, coords[k][1], coords[k][0], _hub_label(k, inbound.get(k, 0), outbound.get(k, 0)))
                for k in hubs
            ],
        )
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], color=FLOW_COLOR, linewidth=3, label="flow ingress → egress (width: rows)"),
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color=TIER_COLORS["SAME_LOCATION"],
                label="egress hub (← rows in)",
            ),
            Line2D([], [], marker="o", linestyle="", color=NEUTRAL, label="ingress hub (rows out →)"),
        ]
        ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.9)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"Top {len(flows)} forwarding flows between locations", fontsize=11)
    return _png(fig)


def _hub_label(k: str, rows_in: int, rows_out: int) -> str:
    parts = ([f"← {rows_in:,}"] if rows_in else []) + ([f"{rows_out:,} →"] if rows_out else [])
    return f"{k}  " + " · ".join(parts)


def _label_hubs(ax: Any, hubs: list[tuple[str, float, float, str]]) -> None:
    """Label each hub (busiest first) at the first of eight spots around it whose box overlaps no
    label already placed, so close hubs (London, Amsterdam, Paris, Frankfurt) stay readable; a
    short leader line joins a label placed away from its hub."""
    ax.apply_aspect()
    to_px = ax.transData.transform
    placed: list[tuple[float, float, float, float]] = []
    char_w, line_h, pad = 5.6, 12.0, 3.0  # pixels of 8-point text at 100 dpi
    spots = [
        (8, 6),
        (8, -16),
        (-8, 6),
        (-8, -16),
        (10, 18),
        (-10, 18),
        (10, -28),
        (-10, -28),
        (28, 20),
        (-28, 20),
        (28, -34),
        (-28, -34),
    ]
    for _k, lon, lat, text in hubs:
        x, y = to_px((lon, lat))
        w = char_w * len(text) + 2 * pad
        for dx, dy in spots:
            left = x + dx if dx >= 0 else x + dx - w
            box = (left, y + dy, left + w, y + dy + line_h)
            if all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in placed):
                break
        placed.append(box)
        far = abs(dx) > 10 or abs(dy) > 18
        ax.annotate(
            text,
            (lon, lat),
            xytext=(dx * 0.72, dy * 0.72),
            textcoords="offset points",
            fontsize=8,
            ha="left" if dx >= 0 else "right",
            va="bottom",
            zorder=5,
            bbox={
                "boxstyle": "round,pad=0.15",
                "fc": "white",
                "ec": "#bbbbbb" if far else "none",
                "alpha": 0.9,
            },
            arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.6} if far else None,
        )


def _concurrency_plot(peaks: list[dict[str, Any]], top: int) -> str | None:
    if not peaks:
        return None
    rows = peaks[:top]
    h = max(2.5, 0.28 * len(rows) + 1.2)
    fig = _figure(10, h, left=0.38, bottom=0.6 / h)
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{p['egress_ip']} → {p['origin']}" for p in rows][::-1]
    vals = [p["peak"] for p in rows][::-1]
    ax.barh(
        labels,
        vals,
        color=[
            TIER_COLORS["UNAVAILABLE"] if v > CONNECTION_LIMIT else TIER_COLORS["SAME_LOCATION"] for v in vals
        ],
    )
    ax.axvline(
        CONNECTION_LIMIT,
        color=TIER_COLORS["UNAVAILABLE"],
        linestyle="--",
        label=f"limit {CONNECTION_LIMIT:,}",
    )
    ax.set_xscale("log")
    _log_count_axis(ax.xaxis)
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


def _column_format(header: str, values: list[Any]) -> Any:
    """One format for a whole column: shares as percentages, integers with separators, other
    numbers with the decimals their largest value needs, text escaped."""
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not nums or len(nums) < len([v for v in values if v is not None and v != ""]):
        return _num
    if "share" in header:
        finite = [abs(v) for v in nums if not math.isnan(v)]
        pd = 1 if not finite or max(finite) >= 0.01 else 3  # tiny shares (of a 40,000 limit) stay visible
        return lambda v: "–" if isinstance(v, float) and math.isnan(v) else f"{100 * v:.{pd}f}%"
    if all(isinstance(v, int) for v in nums):
        return lambda v: f"{v:,}"
    finite = [abs(v) for v in nums if not math.isnan(v)]
    big = max(finite) if finite else 0.0
    # Whole numbers (percentiles of counts that fell on whole rows) print as "5", not "5.00".
    whole = all(float(v).is_integer() for v in finite)
    decimals = 0 if whole or big >= 1000 else 1 if big >= 10 else 2 if big >= 1 else 3
    return lambda v: "–" if isinstance(v, float) and math.isnan(v) else f"{v:,.{decimals}f}"


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    fmts = [_column_format(h, [r[k] for r in rows]) for k, h in enumerate(headers)]
    # numbers right-aligned (digits line up), text left-aligned
    align = ["" if fmt is not _num else ' class="t"' for fmt in fmts]
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{a}>{_e(fmt(c)) if fmt is not _num else _num(c)}</td>"
            for fmt, a, c in zip(fmts, align, r, strict=False)
        )
        + "</tr>"
        for r in rows
    )
    head = "".join(f"<th{a}>{_e(h)}</th>" for h, a in zip(headers, align, strict=False))
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kv_table(rows: list[list[Any]]) -> str:
    """A two-column (label, value) table: each value formatted on its own (mixed kinds)."""
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_num(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1150px}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
td,th{border:1px solid #ddd;padding:.2em .6em;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f4f4f4}td:first-child,th:first-child,td.t,th.t{text-align:left}img{max-width:100%}
.note{color:#666;font-size:.85em}.bad{color:#D55E00;font-weight:bold}
nav{margin:1em 0;line-height:1.8}nav a{margin-right:.2em}
pre{background:#f7f7f7;border:1px solid #e4e4e4;padding:.4em .6em;font-size:.8em;white-space:pre-wrap;
word-break:break-all;margin:.2em 0 .8em}
details summary{cursor:pointer;font-size:.9em;margin:.3em 0}code{font-size:.9em}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:.8em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.5em .9em;min-width:9em}
.card b{display:block;font-size:1.35em;font-variant-numeric:tabular-nums}.card span{color:#666;font-size:.8em}
"""


# How the page names the run's meta fields (summary.json keeps the keys, which scripts read).
META_LABELS = {"elapsed_s": "elapsed (s)", "rows_per_s": "rows per second"}


def _page(title: str, meta: dict[str, Any], sections: list[tuple[str, str, str]], lead: str = "") -> str:
    nav = " · ".join(f'<a href="#{sid}">{_e(name)}</a>' for sid, name, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{_e(name)}</h2>{content}</section>' for sid, name, content in sections
    )
    metas = "".join(
        f"<tr><td>{_e(META_LABELS.get(k, k))}</td><td>{_num(v)}</td></tr>" for k, v in meta.items()
    )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="note">generated {now}</p>{lead}'
        f'<table class="meta">{metas}</table><nav>{nav}</nav>{body}</body></html>'
    )


# ---------------------------------------------------------------------------------------------
# Evaluation report
# ---------------------------------------------------------------------------------------------
def _cards(s: Summary) -> str:
    """The handful of numbers a reader looks for first."""
    share = s.tier_share()
    items = [
        (f"{s.rows_in:,}", "rows in"),
        (f"{s.rows_decided:,}", "decided"),
        (f"{s.rows_rejected:,}", f"rejected ({100 * s.rows_rejected / max(s.rows_in, 1):.1f}%)"),
        (f"{100 * share['LOCAL']:.1f}%", "LOCAL (egress from the ingress server)"),
        (f"{100 * share['REMOTE']:.1f}%", "REMOTE (forwarded to another location)"),
        (f"{100 * share['UNAVAILABLE']:.1f}%", "UNAVAILABLE (fail closed)"),
    ]
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in items)
        + "</div>"
    )


def _inputs_section(s: Summary) -> str:
    parts = []
    n_files = len(s.files)
    dirs = sorted(set(s.given.values()))
    given = f"{n_files:,} file{'s' if n_files != 1 else ''} read" + (
        f", from the director{'ies' if len(dirs) > 1 else 'y'} {', '.join(dirs)}" if dirs else ""
    )
    parts.append(f"<p>{_e(given)}; rows in = decided + rejected in every file.</p>")
    rows = [
        [f, s.given.get(f, "(named)"), c[0], c[1], c[2], c[2] / c[0] if c[0] else 0.0]
        for f, c in s.files.items()
    ]
    if rows:
        parts.append(_table(["file", "given as", "rows in", "decided", "rejected", "share rejected"], rows))
    for n in s.notes:
        parts.append(f'<p class="note">note: {_e(n)}</p>')
    if s.input_errors:
        parts.append("<ul>" + "".join(f'<li class="bad">{_e(e)}</li>' for e in s.input_errors) + "</ul>")
    return "".join(parts)


def _rejects_section(s: Summary, rejects_path: str | None) -> str:
    rej = sorted(s.rejects.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = []
    if rej:
        parts.append(
            _table(
                ["reason", "rows", "share of rows in", "meaning"],
                [[k, v, v / max(s.rows_in, 1), REASON_HELP.get(k, "")] for k, v in rej],
            )
        )
        for k, _ in rej:
            ex = s.reject_examples.get(k, [])
            if ex:
                body = "".join(f"<pre>{_e(x)}</pre>" for x in ex)
                parts.append(
                    f"<details><summary>{_e(k)}: {len(ex)} example row{'s' if len(ex) > 1 else ''}"
                    f"</summary>{body}</details>"
                )
        parts.append(
            f"<p>Every rejected row, with its file, row number and reason: <code>{_e(rejects_path)}</code></p>"
            if rejects_path
            else '<p class="note">To get every rejected row with its file, row number and reason, run again '
            "with <code>--rejects rejects.csv</code> (Python: <code>rejects=</code>).</p>"
        )
    else:
        parts.append('<p class="note">no rejected rows</p>')
    flagged = sorted(s.warnings.items(), key=lambda kv: (-kv[1], kv[0]))
    if flagged:
        parts.append("<h3>Rows decided but flagged</h3>")
        parts.append(
            _table(["flag", "rows", "meaning"], [[k, v, WARNING_HELP.get(k, "")] for k, v in flagged])
        )
        if s.duplicate_examples:
            parts.append(
                f"<p>Repeated RayIDs, for example: <code>{_e(', '.join(s.duplicate_examples))}</code></p>"
            )
    return "".join(parts)


def _sections(
    s: Summary, top: int, prefix: str = "", only: set[str] | None = None, meta: dict[str, Any] | None = None
) -> list[tuple[str, str, str]]:
    """The report's sections as (id, title, HTML); ``only`` draws just those ids (unprefixed).
    Other modules may append sections of their own to this list before the page is built."""
    unit = s.distance_unit
    out: list[tuple[str, str, str]] = []
    meta = meta or {}

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
            ["rows repeating a RayID seen before", s.duplicate_rayids],
        ]
        out.append((prefix + "totals", "Totals", _cards(s) + _kv_table(totals)))
    if want("inputs"):
        out.append((prefix + "inputs", "Input files", _inputs_section(s)))
    if want("rejects"):
        out.append((prefix + "rejects", "Rejected rows by reason", _rejects_section(s, meta.get("rejects"))))
    if want("tier-mix"):
        share = s.tier_share()
        out.append(
            (
                prefix + "tier-mix",
                "Tier mix",
                _img(_tier_bar(s), "tier mix")
                + _table(["tier", "rows", "share"], [[t, s.tiers.get(t, 0), share[t]] for t in TIERS]),
            )
        )
    if want("tier-by-location"):
        locs = s.top_locations(top)
        loc_rows = [[k] + [v.get(t, 0) for t in TIERS] + [sum(v.values())] for k, v in locs]
        out.append(
            (
                prefix + "tier-by-location",
                f"Tier mix per ingress location (top {len(locs)} by rows)",
                (
                    _img(_stacked(locs, "per ingress location"), "tier mix per ingress location")
                    if locs
                    else ""
                )
                + _table(["location", *TIERS, "rows"], loc_rows),
            )
        )
    if want("tier-by-pool"):
        pools = s.top_pools(top)
        pool_rows = [[k] + [v.get(t, 0) for t in TIERS] + [sum(v.values())] for k, v in pools]
        out.append(
            (
                prefix + "tier-by-pool",
                f"Tier mix per pool (top {len(pools)} by rows)",
                (_img(_stacked(pools, "per pool"), "tier mix per pool") if pools else "")
                + _table(["pool", *TIERS, "rows"], pool_rows),
            )
        )
    if want("flows"):
        flows = s.top_flows(top)
        out.append(
            (
                prefix + "flows",
                f"Top forwarding flows between locations (top {len(flows)})",
                _table(
                    [
                        "ingress location",
                        "egress location",
                        "rows",
                        f"distance per row ({unit})",
                        f"added distance, all rows ({unit})",
                    ],
                    [
                        [
                            f["ingress_location"],
                            f["egress_location"],
                            f["rows"],
                            f["distance"],
                            f["added_distance"],
                        ]
                        for f in flows
                    ],
                )
                if flows
                else '<p class="note">no row was forwarded to another location</p>',
            )
        )
    if want("flow-map"):
        m = _flow_map(s, top)
        out.append(
            (
                prefix + "flow-map",
                "Map of forwarding flows",
                _img(m, "map of forwarding flows")
                if m
                else '<p class="note">no coordinates in the topology (distance matrix only)</p>',
            )
        )
    for sid, what, counts, topn in (
        ("load-servers", "egress servers", s.egress_servers, s.top_egress_servers(top)),
        ("load-ips", "egress IPs", s.egress_ips, s.top_egress_ips(top)),
    ):
        if not want(sid):
            continue
        st = s.load_stats(counts)
        stats: list[list[Any]] = [[k, float(v)] for k, v in st.items() if k not in ("count", "max_over_mean")]
        content = (
            (_img(_load_plot(topn, counts, what), f"load per {what}") if counts else "")
            + (
                f"<p>{st['count']:,} {what} in use; the busiest carries "
                f"{st['max_over_mean'] if counts else float('nan'):,.1f} times the mean.</p>"
            )
            + _table(["statistic", "rows"], stats)
            + _table([what[:-1], "rows"], [list(x) for x in topn])
        )
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
                f'<span class="{"bad" if over else ""}">{over:,} of {n_keys:,} pairs over the limit.</span> '
                "Sampled logs show the sampled rows only; a repeated RayID counts once.</p>"
                + (_img(plot, "peak concurrent connections") if plot else "")
                + _table(
                    ["egress IP", "origin", "peak", "share of limit", "first at"],
                    [[p["egress_ip"], p["origin"], p["peak"], p["share_of_limit"], p["at"]] for p in peaks],
                )
            )
        else:
            content = (
                '<p class="note">the log has no usable start timestamps and origin durations '
                "(EdgeStartTimestamp with OriginResponseDurationMs or OriginResponseTime)</p>"
            )
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


def write_report(
    summary: Summary,
    directory: str | Path,
    *,
    top: int = 20,
    title: str = "aegisfwd evaluation",
    meta: dict[str, Any] | None = None,
) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta or {}, "summary": summary.to_dict(top)}
    (d / "summary.json").write_text(
        json.dumps(_clean(doc), indent=1, default=_json_default), encoding="utf-8"
    )
    page = _page(title, meta or {}, _sections(summary, top, meta=meta))
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
    out.append(
        (
            "tier-change",
            "Tier mix change",
            _img(_png(fig), "tier mix change")
            + _table(
                ["tier", "A", "B", "change"], [[t, tc[t]["a"], tc[t]["b"], tc[t]["change"]] for t in TIERS]
            ),
        )
    )
    matrix = [[ta] + [d.transitions.get((ta, tb), 0) for tb in TIERS] for ta in TIERS]
    out.append(("transitions", "Tier transitions (rows: A, columns: B)", _table(["A \\ B", *TIERS], matrix)))
    flows = d.top_changed_flows(top)
    out.append(
        (
            "changed-flows",
            f"Flows that changed (top {len(flows)})",
            _table(
                ["ingress location", "egress A", "egress B", "rows", f"distance change ({unit})"],
                [
                    [f["ingress_location"], f["egress_a"], f["egress_b"], f["rows"], f["distance_change"]]
                    for f in flows
                ],
            )
            if flows
            else '<p class="note">no egress location moved</p>',
        )
    )
    pools = sorted(d.moved_by_pool.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    out.append(
        (
            "moved-pools",
            f"Pools with the most moved rows (top {len(pools)})",
            _table(["pool", "rows whose egress server moved"], [list(p) for p in pools])
            if pools
            else '<p class="note">no row moved</p>',
        )
    )
    return out


def write_compare_report(
    c: Any, directory: str | Path, *, top: int = 20, title: str = "aegisfwd comparison"
) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = {
        "source": c.source,
        "topology A": c.topologies[0],
        "topology B": c.topologies[1],
        "elapsed_s": round(c.elapsed_s, 3),
    }
    doc = {"meta": meta, "diff": c.diff.to_dict(top), "a": c.a.to_dict(top), "b": c.b.to_dict(top)}
    (d / "summary.json").write_text(
        json.dumps(_clean(doc), indent=1, default=_json_default), encoding="utf-8"
    )
    sections = _compare_sections(c, top)
    sections += [
        (sid, f"A: {name}", content)
        for sid, name, content in _sections(c.a, top, "a-", {"tier-mix", "flows"})
    ]
    sections += [
        (sid, f"B: {name}", content)
        for sid, name, content in _sections(c.b, top, "b-", {"tier-mix", "flows"})
    ]
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
    """A rich table with one number format per column, as in the HTML report."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    fmts = [_column_format(h, [r[k] for r in rows]) for k, h in enumerate(headers)]
    for k, h in enumerate(headers):
        t.add_column(h, justify="left" if k == 0 or fmts[k] is _num else "right")
    for r in rows:
        t.add_row(*[_fmt(c) if f is _num else f(c) for f, c in zip(fmts, r, strict=False)])
    return t


def print_summary(
    s: Summary, console: Any = None, *, top: int = 10, meta: dict[str, Any] | None = None
) -> None:
    from rich.console import Console

    con = console or Console()
    unit = s.distance_unit
    rows = [[k, v] for k, v in (meta or {}).items()] + [
        ["rows in", s.rows_in],
        ["rows decided", s.rows_decided],
        ["rows rejected", s.rows_rejected],
        ["forwarded rows (not LOCAL)", s.forwarded_rows],
        [f"mean distance ({unit})", s.mean_distance],
        ["colo with no up server (fallback)", s.ingress_fallback_rows],
    ]
    t = _rich_table("Totals", ["", "value"], [])
    for k, v in rows:
        t.add_row(str(k), _fmt(v))
    con.print(t)
    for e in s.input_errors:
        con.print(f"[red]input error:[/red] {e}")
    if len(s.files) > 1:
        con.print(
            _rich_table(
                "Input files",
                ["file", "rows in", "decided", "rejected"],
                [[f, *c] for f, c in s.files.items()],
            )
        )
    if s.rejects:
        con.print(
            _rich_table(
                "Rejected rows",
                ["reason", "rows", "share of rows in"],
                sorted(([k, v, v / max(s.rows_in, 1)] for k, v in s.rejects.items()), key=lambda r: -r[1]),
            )
        )
    if s.warnings:
        con.print(
            _rich_table(
                "Rows decided but flagged",
                ["flag", "rows", "meaning"],
                [[k, v, WARNING_HELP.get(k, "")] for k, v in sorted(s.warnings.items())],
            )
        )
    share = s.tier_share()
    con.print(
        _rich_table("Tier mix", ["tier", "rows", "share"], [[t, s.tiers.get(t, 0), share[t]] for t in TIERS])
    )
    con.print(
        _rich_table(
            f"Tier mix per ingress location (top {top})",
            ["location", *TIERS, "rows"],
            [[k] + [v.get(t, 0) for t in TIERS] + [sum(v.values())] for k, v in s.top_locations(top)],
        )
    )
    con.print(
        _rich_table(
            f"Tier mix per pool (top {top})",
            ["pool", *TIERS, "rows"],
            [[k] + [v.get(t, 0) for t in TIERS] + [sum(v.values())] for k, v in s.top_pools(top)],
        )
    )
    con.print(
        _rich_table(
            f"Top forwarding flows (top {top})",
            ["ingress", "egress", "rows", f"distance ({unit})", f"added ({unit})"],
            [
                [f["ingress_location"], f["egress_location"], f["rows"], f["distance"], f["added_distance"]]
                for f in s.top_flows(top)
            ],
        )
    )
    for what, counts, topn in (
        ("egress server", s.egress_servers, s.top_egress_servers(top)),
        ("egress IP", s.egress_ips, s.top_egress_ips(top)),
    ):
        st = s.load_stats(counts)
        con.print(
            _rich_table(
                f"Load per {what} (top {top}; {st['count']:,} in use, max/mean {_fmt(st['max_over_mean'])})",
                [what, "rows"],
                [list(x) for x in topn],
            )
        )
    peaks = s.concurrency.peaks(top)
    if peaks:
        over = s.concurrency.counts()[1]
        con.print(
            _rich_table(
                f"Peak concurrent connections per egress IP and origin (limit {CONNECTION_LIMIT:,}; {over} over)",
                ["egress IP", "origin", "peak", "share of limit", "first at"],
                [[p["egress_ip"], p["origin"], p["peak"], p["share_of_limit"], p["at"]] for p in peaks],
            )
        )
    print_check(s.egress_check, con, top, _rich_table)


def print_comparison(c: Any, console: Any = None, *, top: int = 10) -> None:
    from rich.console import Console

    con = console or Console()
    d = c.diff
    unit = d.distance_unit
    con.print(
        _rich_table(
            "What changed (A → B)",
            ["", "value"],
            [
                ["topology A", c.topologies[0]],
                ["topology B", c.topologies[1]],
                ["rows in", d.rows_in],
                ["decided under both", d.rows_both],
                ["rejected under A", d.rejected_a],
                ["rejected under B", d.rejected_b],
                ["egress location moved", d.moved_location],
                ["egress server moved", d.moved_server],
                ["egress IP changed", d.moved_ip],
                ["became UNAVAILABLE", d.became_unavailable],
                ["became available", d.became_available],
                [f"net distance change B − A ({unit})", d.net_distance_change],
                [f"distance saved ({unit})", d.distance_saved],
                [f"distance added ({unit})", d.distance_added],
            ],
        )
    )
    tc = d.tier_change()
    con.print(
        _rich_table(
            "Tier mix change",
            ["tier", "A", "B", "change"],
            [[t, tc[t]["a"], tc[t]["b"], tc[t]["change"]] for t in TIERS],
        )
    )
    con.print(
        _rich_table(
            f"Flows that changed (top {top})",
            ["ingress", "egress A", "egress B", "rows", f"distance change ({unit})"],
            [
                [f["ingress_location"], f["egress_a"], f["egress_b"], f["rows"], f["distance_change"]]
                for f in d.top_changed_flows(top)
            ],
        )
    )
