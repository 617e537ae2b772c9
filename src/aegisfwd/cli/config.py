"""``aegisfwd config``: paths a build system needs to compile against the C ABI (as ``pybind11 --cmakedir``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from .. import capi

# option -> where it points; printed in this order, one path per line, when several are asked for.
_PATHS: dict[str, Callable[[], Path]] = {
    "includedir": capi.include_dir,
    "libdir": capi.library_dir,
    "library": capi.library_path,
    "cmakedir": capi.cmake_dir,
    "pkgconfigdir": capi.pkgconfig_dir,
}


@click.command("config")
@click.option("--includedir", is_flag=True, help="Directory of aegisfwd.h (for -I).")
@click.option("--libdir", is_flag=True, help="Directory of libaegisfwd (for -L and the run path).")
@click.option("--library", is_flag=True, help="The shared library file (for dlopen / LuaJIT ffi.load).")
@click.option("--cmakedir", is_flag=True, help="Directory of aegisfwdConfig.cmake (for -Daegisfwd_DIR=).")
@click.option("--pkgconfigdir", is_flag=True, help="Directory of aegisfwd.pc (for PKG_CONFIG_PATH).")
def config(**wanted: bool) -> None:
    """Print where the C ABI (header, libaegisfwd, CMake and pkg-config files) is installed.

    With no option, print every path as NAME=PATH lines.
    """
    chosen = [name for name, on in wanted.items() if on]
    if not chosen:
        for name, where in _PATHS.items():
            click.echo(f"{name}={where()}")
        return
    for name in chosen:
        click.echo(str(_PATHS[name]()))
