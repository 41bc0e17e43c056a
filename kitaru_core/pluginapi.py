"""The ``hookimpl`` marker and the plugin API version (re-exported by ``kitaru.plugin``)."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("kitaru")

PLUGIN_API = 3
"""The plugin API this Kitaru implements; plugins set ``KITARU_PLUGIN_API`` to the one
they were written for. API 2: observer hooks receive one frozen event record. API 3:
an orchestrator's ``start`` takes ``background``, and it may ``diagnose``, show
``logs`` and ``check``; ``kitaru.plugin`` gives orchestrators their executions."""
