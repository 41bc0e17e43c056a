"""Each execution's log: a text file under the Kitaru home that ``executions logs`` reads.

Only events that matter to a person are written (runs starting and ending, failures,
retries), so the hot path of a succeeding checkpoint writes nothing here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from kitaru_core.errors import KitaruError
from kitaru_core.private_files import open_private_append
from kitaru_core.settings import load_settings
from kitaru_core.store.metadata_store import get_store

logger = logging.getLogger("kitaru")


def log_path(exec_id: str) -> Path:
    return load_settings().logs_dir / f"{exec_id}.log"


def log_paths(exec_ids: Iterable[str]) -> Iterator[Path]:
    """``log_path`` of each, the settings read once (retention deletes thousands)."""
    logs_dir = load_settings().logs_dir
    return (logs_dir / f"{exec_id}.log" for exec_id in exec_ids)


EVENTS_RUN = 0
"""The ``run_output`` run number under which a process logged in to a server keeps an
execution's events (runs count from 1): its disk is not where anyone reads them."""


def log_event(exec_id: str, message: str) -> None:
    logger.info("[%s] %s", exec_id[:8], message)
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n"
    settings = load_settings()
    if settings.server_url is not None:
        try:
            get_store(settings).output.append(exec_id, EVENTS_RUN, line)
        except KitaruError as exc:
            logger.warning("cannot send the execution log line to the server: %s", exc)
        return
    path = settings.logs_dir / f"{exec_id}.log"
    try:
        with open_private_append(path) as f:
            f.write(line.encode("utf-8", "replace"))
    except OSError:
        logger.warning("cannot write the execution log %s", path)
