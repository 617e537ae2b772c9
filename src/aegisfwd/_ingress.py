"""Ingress server for log rows that name only a colo (``docs/hashing.md``, "Ingress server for logs
without a server column"), vectorised in numpy.

A log row says which location or DC (``EdgeColoCode``) received the request, not which server. The
evaluator picks the server among the **up** servers of that range by rendezvous with
``ingress_flow_hash(flow) = mix64(flow ^ INGRESS_FLOW_SALT)``: the largest ``(mix64(h ^ key), key)``
wins, exactly like the egress choice, so one server going down moves only the rows that were on it.

``choose_ingress`` runs the compiled twin (``aegisfwd._core.logeval.choose_ingress``: one pass over the rows,
the up servers of each distinct range listed once per call, eight weights per AVX-512 vector or
four per AVX2 vector where the CPU has them, a scalar loop elsewhere, rows split over threads
without the GIL). ``choose_ingress_np`` is the vectorised numpy version and ``choose_ingress_py``
the plain-Python definition; tests pin all three together.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._hashing import INGRESS_FLOW_SALT, ingress_flow_hash, weight

__all__ = ["choose_ingress", "choose_ingress_np", "choose_ingress_py", "mix64_np"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)

# Weight matrices are computed in row chunks of about this many cells so that the in-place passes
# stay in cache (and memory stays bounded for a colo with hundreds of servers).
_CHUNK_CELLS = 1 << 16


def mix64_np(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """SplitMix64 finalizer over a uint64 array (wrapping arithmetic). In place when ``out is x``."""
    if out is None:
        out = np.array(x, dtype=np.uint64, copy=True)
    elif out is not x:
        np.copyto(out, x)
    tmp = np.empty_like(out)
    np.right_shift(out, _S30, out=tmp)
    out ^= tmp
    out *= _M1
    np.right_shift(out, _S27, out=tmp)
    out ^= tmp
    out *= _M2
    np.right_shift(out, _S31, out=tmp)
    out ^= tmp
    return out


def choose_ingress(
    first: np.ndarray,
    end: np.ndarray,
    flows: np.ndarray,
    server_keys: np.ndarray,
    states: np.ndarray,
    *,
    threads: int | None = None,
    isa: str = "auto",
) -> np.ndarray:
    """For each row, the up server of ``[first, end)`` with the largest ingress rendezvous weight.

    ``first``/``end`` are int32 server ranges per row, ``flows`` the uint64 flow keys, ``server_keys``
    the stable key of every server (``compiled.arrays['server_key']``) and ``states`` the uint8 state
    of every server (0 = up; one per key). Returns int32 server indices, -1 where the range holds no
    up server. A row with ``end <= first`` is empty; any other range must lie in
    ``[0, len(server_keys))`` (``ValueError`` otherwise). ``threads``: ``None`` or 0 = all cores;
    ``isa``: ``"auto"`` (AVX-512, else AVX2, else generic), ``"generic"``, ``"avx2"`` or ``"avx512"``
    (``_core.available_isas()`` lists those this CPU runs; another one is a ``ValueError``).
    """

    def arg(x: np.ndarray, dtype: type) -> np.ndarray:
        return np.require(x, dtype=dtype, requirements=["C", "A"])

    return _core.logeval.choose_ingress(
        arg(first, np.int32),
        arg(end, np.int32),
        arg(flows, np.uint64),
        arg(server_keys, np.uint64),
        arg(states, np.uint8),
        0 if threads is None else max(int(threads), 1),
        isa,
    )


def choose_ingress_np(
    first: np.ndarray,
    end: np.ndarray,
    flows: np.ndarray,
    server_keys: np.ndarray,
    states: np.ndarray,
) -> np.ndarray:
    """``choose_ingress`` in numpy (same arguments and answers), kept as the vectorised twin.

    Rows sharing a range share a candidate set, so the work is grouped by range: one
    ``rows x candidates`` weight matrix per range (in cache-sized row chunks), candidates ordered by
    descending key so that ``argmax``'s first-occurrence rule is the documented tie-break (on equal
    weights the larger key wins).
    """
    first = np.asarray(first, dtype=np.int32)
    end = np.asarray(end, dtype=np.int32)
    flows = np.asarray(flows, dtype=np.uint64)
    server_keys = np.asarray(server_keys, dtype=np.uint64)
    states = np.asarray(states, dtype=np.uint8)
    n = first.shape[0]
    if end.shape[0] != n or flows.shape[0] != n:
        raise ValueError(
            f"first, end and flows must have one length; got {n}, {end.shape[0]}, {flows.shape[0]}"
        )
    out = np.full(n, -1, dtype=np.int32)
    if n == 0:
        return out
    live = end > first
    if not live.any():
        return out
    s_count = server_keys.shape[0]
    if int(end[live].max()) > s_count or int(first[live].min()) < 0:
        raise ValueError("server range outside [0, len(server_keys))")

    h = flows ^ np.uint64(INGRESS_FLOW_SALT)
    mix64_np(h, out=h)

    # Group rows by range: a stable sort on the packed (first, end) pair.
    packed = (first.astype(np.int64) << 32) | end.astype(np.int64)
    rows = np.flatnonzero(live)
    order = rows[np.argsort(packed[rows], kind="stable")]
    sorted_packed = packed[order]
    bounds = np.flatnonzero(np.diff(sorted_packed)) + 1
    starts = np.concatenate(([0], bounds))
    stops = np.concatenate((bounds, [order.shape[0]]))

    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        group = order[a:b]
        lo, hi = int(first[group[0]]), int(end[group[0]])
        cand = lo + np.flatnonzero(states[lo:hi] == 0)
        if cand.shape[0] == 0:
            continue
        keys = server_keys[cand]
        # Descending key, then ascending index: argmax returns the first maximum, so on equal
        # weights the larger key wins. (mix64 is a bijection, so distinct keys never tie on weight;
        # only duplicate keys, which the compiler rejects, could, and then the lower index wins, as in
        # the Python definition.)
        by_key = np.lexsort((cand, ~keys))
        cand = cand[by_key].astype(np.int32)
        keys = np.ascontiguousarray(keys[by_key])
        if cand.shape[0] == 1:
            out[group] = cand[0]
            continue
        step = max(1, _CHUNK_CELLS // cand.shape[0])
        hg = h[group]
        for c in range(0, group.shape[0], step):
            hc = hg[c : c + step]
            w = hc[:, None] ^ keys[None, :]
            mix64_np(w, out=w)
            out[group[c : c + step]] = cand[np.argmax(w, axis=1)]
    return out


def choose_ingress_py(
    first: list[int] | np.ndarray,
    end: list[int] | np.ndarray,
    flows: list[int] | np.ndarray,
    server_keys: list[int] | np.ndarray,
    states: list[int] | np.ndarray,
) -> list[int]:
    """Plain-Python definition of ``choose_ingress`` (one row at a time), for tests."""
    out = []
    for lo, hi, flow in zip(first, end, flows, strict=True):
        h = ingress_flow_hash(int(flow))
        best, best_rank = -1, (-1, -1)
        for s in range(int(lo), int(hi)):
            if int(states[s]) != 0:
                continue
            k = int(server_keys[s])
            rank = (weight(h, k), k)
            if rank > best_rank:
                best, best_rank = s, rank
        out.append(best)
    return out
