"""DuckDB peer: the forwarding chain as SQL, written the way an analyst would.

The topology goes into tables that mirror the file: ``servers`` (with DC, location and whether it is
up), ``holders`` (one row per IP and holder name, with the holder's kind in its own column), and
``distances`` (reachable location pairs). Two membership tables are derived from them once, in SQL:
for each (pool, family) the DCs and the locations that contain an up candidate. The timed query then
joins the request table with these tables and the distance table and returns, per request, the tier
and the egress location (and the distance).

What DuckDB's natural query computes is **tier + egress location**, not the consistent choice of
server and IP: rendezvous hashing (64-bit multiply-xorshift over every candidate) is not what SQL is
written for. ``computes = "tier+location"``, and it is compared with the engine's ``tier``,
``location`` and ``distance`` columns only.

DuckDB runs the query on ``threads`` threads (default: all cores). ``duckdb`` is an optional extra
(``pip install "aegisfwd[bench]"``) and is imported when a peer is built.
"""

from __future__ import annotations

import numpy as np

LOCAL, SAME_DC, SAME_LOCATION, REMOTE, UNAVAILABLE = 0, 1, 2, 3, 4

SETUP_SQL = """
CREATE OR REPLACE TABLE dc_up AS
    SELECT dc, any_value(location) AS location, count(*) FILTER (WHERE up) AS n_up FROM servers GROUP BY dc;

-- DCs of each (pool, family) that contain an up server holding an applicable IP.
CREATE OR REPLACE TABLE group_dc AS
SELECT DISTINCT pool, family, dc FROM (
    SELECT h.pool, h.family, s.dc
      FROM holders h JOIN servers s ON h.server = s.server WHERE s.up
    UNION ALL
    SELECT h.pool, h.family, d.dc
      FROM holders h JOIN dc_up d ON h.dc = d.dc WHERE d.n_up > 0
    UNION ALL
    SELECT h.pool, h.family, d.dc
      FROM holders h JOIN dc_up d ON h.location = d.location WHERE d.n_up > 0
);

-- Locations of each (pool, family) that contain one.
CREATE OR REPLACE TABLE group_location AS
SELECT DISTINCT g.pool, g.family, d.location FROM group_dc g JOIN dc_up d USING (dc);
"""

DECIDE_SQL = """
WITH req AS (
    SELECT r.rid, r.pool, r.family, r.server, s.dc, s.location, s.up
      FROM requests r JOIN servers s ON r.server = s.server
),
local_rows AS (          -- the ingress server is up and holds an applicable IP (by name, DC or location)
    SELECT r.rid FROM req r JOIN holders h
        ON h.pool = r.pool AND h.family = r.family AND h.server = r.server WHERE r.up
    UNION
    SELECT r.rid FROM req r JOIN holders h
        ON h.pool = r.pool AND h.family = r.family AND h.dc = r.dc WHERE r.up
    UNION
    SELECT r.rid FROM req r JOIN holders h
        ON h.pool = r.pool AND h.family = r.family AND h.location = r.location WHERE r.up
),
same_dc_rows AS (
    SELECT r.rid FROM req r JOIN group_dc g ON g.pool = r.pool AND g.family = r.family AND g.dc = r.dc
),
same_location_rows AS (
    SELECT r.rid FROM req r JOIN group_location g
        ON g.pool = r.pool AND g.family = r.family AND g.location = r.location
),
near AS (
    SELECT r.rid, r.pool, r.family, r.location
      FROM req r
     WHERE r.rid NOT IN (SELECT rid FROM local_rows)
       AND r.rid NOT IN (SELECT rid FROM same_dc_rows)
       AND r.rid NOT IN (SELECT rid FROM same_location_rows)
),
remote AS (              -- the closest location with a candidate; ties go to the first listed
    SELECT n.rid, arg_min(g.location, (d.distance, g.location)) AS location, min(d.distance) AS distance
      FROM near n
      JOIN group_location g ON g.pool = n.pool AND g.family = n.family
      JOIN distances d ON d.src = n.location AND d.dst = g.location
     GROUP BY n.rid
)
SELECT r.rid,
       CASE WHEN l.rid IS NOT NULL THEN 0
            WHEN c.rid IS NOT NULL THEN 1
            WHEN o.rid IS NOT NULL THEN 2
            WHEN m.rid IS NOT NULL THEN 3
            ELSE 4 END AS tier,
       CASE WHEN m.rid IS NOT NULL THEN m.location
            WHEN l.rid IS NOT NULL OR c.rid IS NOT NULL OR o.rid IS NOT NULL THEN r.location
            ELSE -1 END AS location,
       CASE WHEN m.rid IS NOT NULL THEN m.distance
            WHEN l.rid IS NOT NULL OR c.rid IS NOT NULL OR o.rid IS NOT NULL THEN 0.0
            ELSE 'NaN'::DOUBLE END AS distance
  FROM req r
  LEFT JOIN local_rows l USING (rid)
  LEFT JOIN same_dc_rows c USING (rid)
  LEFT JOIN same_location_rows o USING (rid)
  LEFT JOIN remote m USING (rid)
"""


class DuckDBPeer:
    """``decide_batch(server, pool, family, flow)``: tier, egress location and distance, in SQL."""

    name = "peer.duckdb"
    computes = "tier+location"

    def __init__(self, topology, threads: int | None = None) -> None:
        import duckdb
        import pyarrow as pa

        t = topology
        self.con = duckdb.connect(":memory:")
        self.threads = 0
        self.set_threads(threads)
        li, di, si = t.location_index, t.dc_index, t.server_index

        server_dc = np.empty(len(t.server_ids), np.int32)
        for d, (a, b) in enumerate(t.dc_server_ranges):
            server_dc[a:b] = d
        dc_location = np.array([li[dc.location] for dc in t.ordered_data_centers], np.int32)
        servers = pa.table(
            {
                "server": np.arange(len(t.server_ids), dtype=np.int32),
                "dc": server_dc,
                "location": dc_location[server_dc],
                "up": t.initial_states() == 0,
            }
        )
        # One row per (IP, holder name); the name's kind decides which of server/dc/location is set.
        by_holders: dict[tuple[str, ...], np.ndarray] = {}
        parts, lengths, ip_pool, ip_family = [], [], [], []
        for p, ip in t.ordered_ips:
            part = by_holders.get(ip.holders)
            if part is None:
                part = by_holders[ip.holders] = np.array(
                    [(si.get(h, -1), di.get(h, -1), li.get(h, -1)) for h in ip.holders], np.int32
                ).reshape(-1, 3)
            parts.append(part)
            lengths.append(len(part))
            ip_pool.append(p)
            ip_family.append(ip.network.version)
        flat = np.concatenate(parts) if parts else np.empty((0, 3), np.int32)
        lengths_a = np.array(lengths, np.int64)
        holders = pa.table(
            {
                "pool": np.repeat(np.array(ip_pool, np.int32), lengths_a),
                "family": np.repeat(np.array(ip_family, np.uint8), lengths_a),
                "ip": np.repeat(np.arange(len(lengths), dtype=np.int32), lengths_a),
                **{
                    name: pa.array(flat[:, k], pa.int32(), mask=flat[:, k] < 0)
                    for k, name in enumerate(("server", "dc", "location"))
                },
            }
        )
        dist = t.distance_matrix()
        src, dst = np.nonzero(~np.isnan(dist) & ~np.eye(len(dist), dtype=bool))
        distances = pa.table(
            {"src": src.astype(np.int32), "dst": dst.astype(np.int32), "distance": dist[src, dst]}
        )
        for name, table in (("servers", servers), ("holders", holders), ("distances", distances)):
            self.con.register(f"_{name}", table)
            self.con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}")
            self.con.unregister(f"_{name}")
        self.con.execute(SETUP_SQL)

    def set_threads(self, threads: int | None) -> None:
        """Run the next queries on ``threads`` threads (``None``: DuckDB's default, all cores)."""
        if threads is None:
            self.con.execute("RESET threads")
        else:
            self.con.execute(f"SET threads = {int(threads)}")
        self.threads = int(self.con.execute("SELECT current_setting('threads')").fetchall()[0][0])

    def decide_batch(
        self, server: np.ndarray, pool: np.ndarray, family: np.ndarray, flow: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        import pyarrow as pa

        n = len(server)
        requests = pa.table(
            {
                "rid": np.arange(n, dtype=np.int64),
                "server": np.asarray(server, np.int32),
                "pool": np.asarray(pool, np.int32),
                "family": np.asarray(family, np.uint8),
            }
        )
        self.con.register("requests", requests)
        try:
            res = self.con.execute(DECIDE_SQL).fetchnumpy()
        finally:
            self.con.unregister("requests")
        row = np.asarray(res["rid"])
        tier = np.empty(n, np.uint8)
        location = np.empty(n, np.int32)
        distance = np.empty(n, np.float64)
        tier[row] = res["tier"]
        location[row] = res["location"]
        distance[row] = res["distance"]
        return {"tier": tier, "location": location, "distance": distance}
