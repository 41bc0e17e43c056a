"""Rows of the ``stacks`` table: registered stack definitions, secrets unresolved."""

from __future__ import annotations

import json
import time
from typing import Any

from kitaru_core.errors import KitaruStackError
from kitaru_core.store.database import Database

MAX_DEFINITION_BYTES = 1024 * 1024
"""A stored stack row is bounded like the stack file it came from."""


class StackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, name: str, definition: dict[str, Any], source: str | None) -> None:
        now = time.time()
        try:
            encoded = json.dumps(definition, allow_nan=False)
        except ValueError:
            raise KitaruStackError(
                f"stack {name!r} holds NaN or infinity, which cannot be stored; use a number"
            ) from None
        if len(encoded) > MAX_DEFINITION_BYTES:
            raise KitaruStackError(
                f"stack {name!r} is {len(encoded):,} bytes once expanded, over the limit of "
                f"{MAX_DEFINITION_BYTES:,}; nothing was stored"
            )
        params = {"name": name, "d": encoded, "s": source, "now": now}
        with self.db.transaction() as db:
            changed = db.execute(
                "UPDATE stacks SET definition = :d, source = :s, updated_at = :now "
                "WHERE name = :name",
                params,
            )
            if not changed:
                db.execute(
                    "INSERT INTO stacks (name, definition, source, created_at, updated_at) "
                    "VALUES (:name, :d, :s, :now, :now)",
                    params,
                )

    def get(self, name: str) -> tuple[dict[str, Any], str | None] | None:
        row = self.db.fetchone(
            "SELECT definition, source FROM stacks WHERE name = :name", {"name": name}
        )
        return (json.loads(row[0]), row[1]) if row else None

    def names(self) -> list[str]:
        return [r[0] for r in self.db.fetchall("SELECT name FROM stacks ORDER BY name")]

    def delete(self, name: str) -> bool:
        return self.db.execute("DELETE FROM stacks WHERE name = :name", {"name": name}) == 1
