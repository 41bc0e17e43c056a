"""The process's plugins, loaded on first use.

Loading imports pluggy and every installed plugin, which a process that runs a short
flow and notifies nobody should not pay for at import time. This is the one place the
core defers importing a module of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kitaru_core.plugins import Plugins


def get_plugins() -> Plugins:
    from kitaru_core.plugins import get_plugins as load

    return load()
