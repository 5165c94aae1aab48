"""The per-request context every resolver receives as `info.context`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.datasources.protocol import DataSource
from gateway.schema.loaders import Loaders
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.execution.documents import Prepared
    from gateway.execution.policy import Mark

__all__ = ["RequestContext"]


@dataclass
class RequestContext:
    """Built by the executor for each operation, with fresh DataLoaders."""

    data_source: DataSource
    settings: Settings
    request: Any = None  # the framework's request (aiohttp or Starlette)
    prepared: Prepared | None = None  # the document the executor parsed and validated
    marks: Mapping[tuple[str, str], Mark] = field(default_factory=dict)  # the policy's, by (type, field)
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.data_source)

    def after_write(self) -> None:
        """Forget what this request loaded, so fields read after a mutation see its effect."""
        self.loaders = Loaders(self.data_source)
