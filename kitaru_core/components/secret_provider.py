"""The secret provider: where provider keys and other credentials are kept."""

from __future__ import annotations

from abc import ABC, abstractmethod

from kitaru_core.errors import KitaruBackendError


class SecretNotFoundError(KitaruBackendError):
    """The provider holds no secret of that name."""


class SecretProvider(ABC):
    flavor: str = ""

    @abstractmethod
    def get(self, name: str) -> str:
        """The secret's value; ``SecretNotFoundError`` if there is none."""

    @abstractmethod
    def set(self, name: str, value: str) -> None:
        """Create the secret or replace its value."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the secret; ``SecretNotFoundError`` if there is none."""

    @abstractmethod
    def list(self) -> list[str]:
        """The names of every secret (never the values)."""
