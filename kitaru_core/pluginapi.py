"""What a plugin module imports: the ``hookimpl`` marker (also ``kitaru.hookimpl``)."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("kitaru")
