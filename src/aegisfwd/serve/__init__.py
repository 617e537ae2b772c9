"""The what-if explorer behind ``aegisfwd serve``: loaded rows, a what-if session, summaries, a web app.

    from aegisfwd.serve import PlacementMove, Session, sample_rows, summarize
    session = Session(topology, sample_rows(topology, engine.compiled, 1_000_000), engine=engine)
    session.set_states({"FRA": "down"})
    session.move(PlacementMove("192.0.2.10", add=["AMS"]))
    summarize(session)["tiers"]

The web application (``aegisfwd.serve.app.create_app``, aiohttp: the ``serve`` extra) is imported only
by the command, so the rest runs without it. See docs/serve.md.
"""

from __future__ import annotations

from .placement import MAX_IPV4_LOCATIONS, PlacementError, PlacementMove
from .rows import ROW_BYTES, Rows, log_rows, sample_rows
from .session import Session, StateChangeError
from .summary import summarize

__all__ = [
    "MAX_IPV4_LOCATIONS",
    "ROW_BYTES",
    "PlacementError",
    "PlacementMove",
    "Rows",
    "Session",
    "StateChangeError",
    "log_rows",
    "sample_rows",
    "summarize",
]
