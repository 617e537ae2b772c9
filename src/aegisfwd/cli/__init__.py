"""The ``aegisfwd`` command line (entry point ``aegisfwd.cli:main``).

One module per command family: ``topology`` (validate, compile, decide), ``demo``, and the lazily
loaded ``evaluate`` (evaluate, compare) and ``bench``; ``_group`` is the command group and
``_common`` what the commands share. A new command lives in its own module and is registered here
with one line (``LAZY_COMMANDS`` in ``_group`` for a command that needs an extra).
"""

from __future__ import annotations

from ._group import LAZY_COMMANDS, LazyGroup, main
from .demo import demo
from .topology import compile_command, decide, validate

main.add_command(validate)
main.add_command(compile_command)
main.add_command(decide)
main.add_command(demo)

__all__ = ["LAZY_COMMANDS", "LazyGroup", "main"]
