"""``CompiledTopology``: the compiled tables of one topology, written as one file and mapped back.

The arrays are read-only numpy arrays; loaded from a file they are zero-copy views into a read-only
memory map, shared through the page cache. What a file must satisfy before it is handed on is checked
by the C++ loader, through ``_verify``.
"""

from __future__ import annotations

import contextlib
import json
import mmap as _mmap
import os
import secrets
import zlib
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _hashing
from .._types import IdTables
from ..errors import CompiledFileError
from ._format import ARRAY_DTYPE, ARRAY_NAMES, FORMAT_VERSION, MAGIC, PREFIX, PREFIX_SIZE, align
from ._verify import open_tables

if TYPE_CHECKING:  # pragma: no cover
    from ..topology import Topology

__all__ = ["CompiledTopology", "load_compiled"]


class CompiledTopology:
    """The compiled tables of one topology (``docs/compiled-format.md``).

    ``arrays`` maps every array name to a read-only, C-contiguous, little-endian numpy array: views
    into the file (or buffer) when loaded, so that a memory-mapped file is shared through the page
    cache. Id tables and lookup dicts are decoded on first use and cached.

    Build one with ``compile_topology`` / ``Topology.compile()``, ``load_compiled`` or ``from_bytes``.
    The constructor itself checks nothing: it is for code that already holds consistent arrays.
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        *,
        counts: Mapping[str, int],
        meta: Mapping[str, Any] | None = None,
        distance_unit: str = "km",
        hash_scheme: int = _hashing.HASH_SCHEME_VERSION,
        topology: Topology | None = None,
        buffer: Any = None,
    ) -> None:
        frozen = {}
        for name, array in arrays.items():
            if array.flags.writeable:
                array = array.view()
                array.flags.writeable = False
            frozen[name] = array
        self._arrays = frozen
        self._counts = dict(counts)
        self._meta = dict(meta or {})
        self._distance_unit = distance_unit
        self._hash_scheme = int(hash_scheme)
        self._buffer = buffer  # keeps a memory map / buffer alive while views into it exist
        self.topology = topology

    # ---- plain attributes -------------------------------------------------------------------
    @property
    def arrays(self) -> Mapping[str, np.ndarray]:
        return MappingProxyType(self._arrays)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    @property
    def counts(self) -> Mapping[str, int]:
        return MappingProxyType(self._counts)

    @property
    def meta(self) -> Mapping[str, Any]:
        return MappingProxyType(self._meta)

    @property
    def distance_unit(self) -> str:
        return self._distance_unit

    @property
    def hash_scheme(self) -> int:
        return self._hash_scheme

    @property
    def format_version(self) -> int:
        return FORMAT_VERSION

    @property
    def nbytes(self) -> int:
        """Bytes held by the tables (the file adds a header and alignment padding)."""
        return sum(int(a.nbytes) for a in self._arrays.values())

    def __repr__(self) -> str:
        c = self._counts
        return (
            f"<CompiledTopology {c['locations']} locations, {c['dcs']} DCs, {c['servers']} servers, "
            f"{c['pools']} pools, {c['ips']} IPs, {c['lists']} lists, {c['layouts']} layouts, "
            f"{self.nbytes / 2**20:.1f} MiB>"
        )

    # ---- ids (decoded lazily, cached) -----------------------------------------------------------
    def _decode_ids(self, kind: str) -> list[str]:
        raw = self._arrays[f"{kind}_id_bytes"].tobytes()
        offsets = self._arrays[f"{kind}_id_offsets"].tolist()
        if raw.isascii():
            text = raw.decode("ascii")
            return [text[a:b] for a, b in pairwise(offsets)]
        try:
            return [raw[a:b].decode("utf-8") for a, b in pairwise(offsets)]
        except UnicodeDecodeError as exc:
            raise CompiledFileError(f"string table '{kind}_id_bytes' is not valid UTF-8: {exc}") from None

    @cached_property
    def locations(self) -> list[str]:
        return self._decode_ids("location")

    @cached_property
    def dcs(self) -> list[str]:
        return self._decode_ids("dc")

    @cached_property
    def servers(self) -> list[str]:
        return self._decode_ids("server")

    @cached_property
    def pools(self) -> list[str]:
        return self._decode_ids("pool")

    @cached_property
    def ips(self) -> list[str]:
        return self._decode_ids("ip")

    @cached_property
    def zones(self) -> list[str]:
        return self._decode_ids("zone")

    def id_tables(self) -> IdTables:
        return IdTables(self.locations, self.dcs, self.servers, self.pools, self.ips)

    @cached_property
    def location_index(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.locations)}

    @cached_property
    def dc_index(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.dcs)}

    @cached_property
    def server_index(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.servers)}

    @cached_property
    def pool_index(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.pools)}

    @cached_property
    def zone_index(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.zones)}

    # ---- serialisation ----------------------------------------------------------------------------
    def _file_layout(self) -> tuple[bytes, list[tuple[int, np.ndarray]], int]:
        """(prefix-less header bytes, [(offset, array)] in file order, total length)."""
        names = [n for n in ARRAY_NAMES if n in self._arrays]
        names += [n for n in self._arrays if n not in ARRAY_DTYPE]
        payload_start = align(PREFIX_SIZE + 1024)
        while True:
            offset = payload_start
            placed = []
            entries = {}
            for name in names:
                array = self._arrays[name]
                offset = align(offset)
                placed.append((offset, array))
                entries[name] = {
                    "dtype": array.dtype.str,
                    "shape": list(array.shape),
                    "offset": offset,
                    "nbytes": int(array.nbytes),
                }
                offset += int(array.nbytes)
            total = align(offset)
            header = json.dumps(
                {
                    "hash_scheme": self._hash_scheme,
                    "distance_unit": self._distance_unit,
                    "counts": self._counts,
                    "meta": self._meta,
                    "arrays": entries,
                },
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode("utf-8")
            if PREFIX_SIZE + len(header) <= payload_start:
                # Pad the JSON with spaces up to the first array: H + 32 is then the payload start.
                return header.ljust(payload_start - PREFIX_SIZE, b" "), placed, total
            payload_start = align(PREFIX_SIZE + len(header))

    def _write(self, write: Callable[[Any], Any]) -> int:
        header, placed, total = self._file_layout()
        payload_start = PREFIX_SIZE + len(header)

        def chunks() -> Iterable[Any]:
            cursor = payload_start
            for offset, array in placed:
                if offset > cursor:
                    yield bytes(offset - cursor)
                if array.nbytes:
                    yield np.ascontiguousarray(array).reshape(-1).view(np.uint8).data
                cursor = offset + int(array.nbytes)
            if total > cursor:
                yield bytes(total - cursor)

        payload_crc = 0
        for chunk in chunks():
            payload_crc = zlib.crc32(chunk, payload_crc)
        write(PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), total, zlib.crc32(header), payload_crc))
        write(header)
        for chunk in chunks():
            write(chunk)
        return total

    def to_bytes(self) -> bytes:
        """The file format as one flat ``bytes`` (what ``save`` writes and pickling carries)."""
        out = bytearray()
        self._write(out.extend)
        return bytes(out)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the file format to ``path`` atomically (a temporary file, then a rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                self._write(f.write)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def from_bytes(cls, buffer: Any, *, verify: bool = True) -> CompiledTopology:
        """Open the file format held in ``buffer`` (bytes, bytearray, memoryview, mmap).

        The arrays are read-only zero-copy views into ``buffer``, which the result keeps alive, when
        it is read-only (bytes, a read-only mmap); a writable buffer (bytearray, writable memoryview
        or mmap) is copied first, so that writing to it later cannot change what an engine reads.
        ``verify=False`` skips only the payload CRC (for a file another process has just checked);
        every structural and index-range check still runs.
        """
        return _open_buffer(buffer, verify=verify, owner=buffer)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickle, (self.to_bytes(),))


def _unpickle(data: bytes) -> CompiledTopology:
    return CompiledTopology.from_bytes(data)


def _open_buffer(buffer: Any, *, verify: bool, owner: Any, source: str | None = None) -> CompiledTopology:
    """A ``CompiledTopology`` over ``buffer`` after every check; ``source`` (a path) prefixes errors.

    A writable buffer (bytearray, writable memoryview or mmap, numpy array) is copied first: the
    engines keep raw pointers into the arrays, validated once, so bytes changed afterwards could
    send the C++ core outside a table. Read-only buffers (bytes, read-only mmaps) are used in place.
    """
    try:
        writable = not memoryview(buffer).readonly
    except TypeError:
        writable = False  # not a buffer at all: open_tables names the problem
    if writable:
        buffer = owner = bytes(buffer)
    try:
        arrays, counts, header = open_tables(buffer, verify=verify)
    except CompiledFileError as exc:
        if source is None:
            raise
        raise CompiledFileError(f"{source}: {exc}") from None
    return CompiledTopology(
        arrays,
        counts=counts,
        meta=header["meta"],
        distance_unit=header["distance_unit"],
        hash_scheme=header["hash_scheme"],
        topology=None,
        buffer=owner,
    )


def load_compiled(
    path: str | os.PathLike[str], *, mmap: bool = True, verify: bool = True
) -> CompiledTopology:
    """Open a compiled topology file: memory-mapped read-only (``mmap=False`` reads it into memory).

    Checks magic, version, length, header CRC and schema, payload CRC (unless ``verify=False``) and
    every index range; raises ``CompiledFileError`` naming the first problem found.

    A mapped file must not be rewritten in place while it is in use; ``save`` replaces files by an
    atomic rename, which leaves existing mappings intact.
    """
    with open(path, "rb") as f:
        if not mmap:
            data = f.read()
            return _open_buffer(data, verify=verify, owner=data, source=os.fspath(path))
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise CompiledFileError(f"{os.fspath(path)}: truncated: file has 0 bytes")
        mapped = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)
    return _open_buffer(mapped, verify=verify, owner=mapped, source=os.fspath(path))


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
