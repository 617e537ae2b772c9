"""Opening a topology file for an engine, through a cache of compiled files.

Parsing and validating the built-in world topology's JSON takes seconds and compiling it about a
second on a 2-core machine, while a compiled file maps in milliseconds. So the commands that decide
from a topology file (``decide``, ``evaluate``, ``compare``) keep, per distinct file content, the
compiled file in the user cache directory (``platformdirs.user_cache_dir("aegisfwd")/compiled``, or
``$AEGISFWD_CACHE_DIR``) and map it on the next run.

The cache is never stale: an entry is named after a SHA-256 digest (160 bits of it) of the bytes read from the
file (the very bytes that are parsed on a miss; the file is memory-mapped, not copied), its format (the extension), the compiled format
version, the hashing scheme and the package version. A changed file, or another aegisfwd, has
another key. Entries are written atomically (temporary file, then rename), checked like any
compiled file when mapped (a corrupt entry is rebuilt), and only the most recently used
``KEEP_ENTRIES`` are kept. A cache directory that cannot be written is not an error: the file is
then compiled on every run, as without the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from ._hashing import HASH_SCHEME_VERSION
from ._loader import mapped_bytes, topology_from_bytes
from ._loader.readers import Buffer
from ._version import __version__
from .compiled import FORMAT_VERSION, MAGIC, CompiledTopology, load_compiled
from .errors import CompiledFileError

__all__ = ["CACHE_DIR_ENV", "KEEP_ENTRIES", "cache_dir", "cache_entry", "is_compiled_file", "open_compiled"]

CACHE_DIR_ENV = "AEGISFWD_CACHE_DIR"
#: Compiled files kept (the world topology's is about 16 MB); the least recently used go first.
KEEP_ENTRIES = 8
_SUFFIX = ".aegis"


def cache_dir() -> Path:
    """Where compiled files are cached: ``$AEGISFWD_CACHE_DIR``, else the user cache directory."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_cache_dir("aegisfwd", appauthor=False)) / "compiled"


def cache_entry(raw: Buffer, path: str | os.PathLike[str]) -> Path:
    """The cache file for a topology file whose bytes are ``raw`` (its extension names the format)."""
    # SHA-256: OpenSSL's runs on the CPU's SHA extensions where there are some, and hashed the
    # world topology's 38 MB JSON faster than BLAKE2b here (docs/cli.md, "Compiled-file cache").
    digest = hashlib.sha256(raw)
    digest.update(b"\x00" + Path(path).suffix.lower().encode("utf-8"))
    key = f"f{FORMAT_VERSION}-h{HASH_SCHEME_VERSION}-v{__version__}-{digest.hexdigest()[:40]}"
    return cache_dir() / (key.replace(os.sep, "_") + _SUFFIX)


def is_compiled_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts with the magic bytes of a compiled file (``OSError`` if unreadable)."""
    with open(path, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def open_compiled(
    path: str | os.PathLike[str], *, cache: bool = True, with_model: bool = False
) -> CompiledTopology:
    """The compiled tables of a topology file or a compiled file.

    A topology file is read once; with ``cache`` its compiled file comes from the cache when one
    was written for the same bytes, and is written there otherwise. ``with_model`` also builds the
    ``Topology`` model (``compiled.topology``), which ``Engine.explain`` needs: that parses the file
    even on a cache hit. A compiled file is mapped as it is (it carries no model).
    """
    if is_compiled_file(path):
        return load_compiled(path)
    with mapped_bytes(Path(path)) as raw:
        entry = cache_entry(raw, path) if cache else None
        if entry is not None:
            compiled = _load_entry(entry)
            if compiled is not None:
                if with_model:
                    compiled.topology = topology_from_bytes(raw, path)
                return compiled
        compiled = topology_from_bytes(raw, path).compile()
    if entry is not None:
        _store(compiled, entry)
    return compiled


def _load_entry(entry: Path) -> CompiledTopology | None:
    try:
        compiled = load_compiled(entry)
    except FileNotFoundError:
        return None
    except (CompiledFileError, OSError):
        with contextlib.suppress(OSError):
            entry.unlink()  # corrupt or unreadable: rebuilt below
        return None
    with contextlib.suppress(OSError):
        os.utime(entry)  # most recently used
    return compiled


def _store(compiled: CompiledTopology, entry: Path) -> None:
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        compiled.save(entry)
    except OSError:
        return  # a read-only or full cache directory only costs the next run a compile
    _prune(entry.parent)


def _prune(directory: Path) -> None:
    """Keep the ``KEEP_ENTRIES`` most recently used entries (a mapped file survives its unlink)."""
    entries = []
    for candidate in directory.glob(f"*{_SUFFIX}"):
        with contextlib.suppress(OSError):
            entries.append((candidate.stat().st_mtime, candidate))
    entries.sort(reverse=True)
    for _, old in entries[KEEP_ENTRIES:]:
        with contextlib.suppress(OSError):
            old.unlink()
