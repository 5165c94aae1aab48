"""The per-request context every resolver receives as `info.context`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.datasources.protocol import DataSource
from gateway.schema.loaders import Loaders
from gateway.settings import Settings

__all__ = ["RequestContext"]


@dataclass
class RequestContext:
    """Built by each HTTP door for each request, with fresh DataLoaders."""

    data_source: DataSource
    settings: Settings
    request: Any = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.data_source)

    def after_write(self) -> None:
        """Forget what this request loaded, so fields read after a mutation see its effect."""
        self.loaders = Loaders(self.data_source)
