"""The base of every flavor's config model: unknown fields are errors, so a typo in a
stack file names the field instead of being ignored; numbers are finite (``1e999999``
is refused, not read as infinity)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
