"""The SSLContext every backend uses: verified chain, verified host name, never plaintext fallback."""

from __future__ import annotations

import ssl

from gateway.settings import Settings

__all__ = ["client_ssl_context"]


def client_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The context for DB_SSL=true, or None when TLS is off."""
    if not settings.db_ssl or settings.db_ssl_mode == "disable":
        return None
    pem = settings.ca_cert_pem()
    context = ssl.create_default_context(cadata=pem.decode("ascii") if pem else None)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = settings.db_ssl_mode == "verify-full"
    if settings.db_ssl_cert is not None and settings.db_ssl_key is not None:
        context.load_cert_chain(settings.db_ssl_cert, settings.db_ssl_key)
    return context
