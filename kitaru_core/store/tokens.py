"""Rows of the ``api_tokens`` table: who may call ``kitaru serve``, by the hash of
their token's secret."""

from __future__ import annotations

from kitaru_core.store.database import Database
from kitaru_core.store.records import TokenRecord


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, record: TokenRecord) -> bool:
        """Store a new token; False when its name is taken."""
        try:
            self.db.execute(TokenRecord.INSERT, record.params())
        except self.db.integrity_error:
            return False
        return True

    def get(self, token_id: str) -> TokenRecord | None:
        row = self.db.fetchone(
            f"SELECT {TokenRecord.COLUMNS} FROM api_tokens WHERE id = :id", {"id": token_id}
        )
        return TokenRecord.from_row(row) if row else None

    def by_name(self, name: str) -> TokenRecord | None:
        row = self.db.fetchone(
            f"SELECT {TokenRecord.COLUMNS} FROM api_tokens WHERE name = :name", {"name": name}
        )
        return TokenRecord.from_row(row) if row else None

    def list(self) -> list[TokenRecord]:
        rows = self.db.fetchall(f"SELECT {TokenRecord.COLUMNS} FROM api_tokens ORDER BY created_at")
        return [TokenRecord.from_row(r) for r in rows]

    def revoke(self, token_id: str, when: float) -> bool:
        return bool(
            self.db.execute(
                "UPDATE api_tokens SET revoked_at = :when WHERE id = :id AND revoked_at IS NULL",
                {"id": token_id, "when": when},
            )
        )

    def touch(self, token_id: str, when: float) -> None:
        self.db.execute(
            "UPDATE api_tokens SET last_used_at = :when WHERE id = :id",
            {"id": token_id, "when": when},
        )
