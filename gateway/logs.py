"""Log format and level, one set-up for every entry point (CLI, Vercel)."""

from __future__ import annotations

import logging
import sys

from gateway.settings import Settings

__all__ = ["configure_logging"]


def configure_logging(settings: Settings) -> None:
    """Log to stderr at LOG_LEVEL; hosts such as Vercel collect stderr."""
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
