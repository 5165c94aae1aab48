"""Vercel's entry: the module-level ASGI `app` its Python runtime serves."""

import gc
import logging
import os
import sys
from pathlib import Path

# Start-up allocates some 100,000 objects that live as long as the instance; the cyclic collector
# would traverse them again and again while they are made (~45 ms of a cold start) and free nothing.
# It is off until the app is built, then everything built so far is frozen out of its reach.
gc.disable()
# Vercel puts this folder on sys.path, not the project root that holds the `gateway` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Pydantic looks for plugins in every installed package's metadata the first time a model is built
# (~15 ms of a cold start); the gateway uses none. Setting the variable, even empty, turns them back on.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from gateway.auth.tokens import warn_if_open
from gateway.connect.tls import warn_if_unencrypted
from gateway.doors.asgi_app import create_asgi_app
from gateway.logs import configure_logging
from gateway.settings import SettingsError, load_settings

try:
    settings = load_settings()
except SettingsError as exc:
    # One line in the function's log naming the variable, instead of a validation dump.
    raise SystemExit(f"configuration error: {exc}") from None
configure_logging(settings)
warn_if_unencrypted(settings)
warn_if_open(settings)
if os.environ.get("VERCEL") and settings.db_backend == "sqlite":
    logging.getLogger("gateway").warning(
        "DB_BACKEND is sqlite: a serverless instance cannot keep a database file; "
        "set DB_BACKEND to postgres or mysql"
    )
app = create_asgi_app(settings)
gc.freeze()
gc.enable()
