"""TLS to the database: one SSLContext for both backends, verified, failing closed, failures named."""

from __future__ import annotations

import base64
import binascii
import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.errors import Unavailable
from gateway.settings import Settings

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "CaCertificate",
    "ClientTls",
    "LoadedCa",
    "TlsError",
    "TlsProblem",
    "ca_mode",
    "check_ca_dates",
    "client_ssl_context",
    "decode_ca_base64",
    "explain_tls_failure",
    "load_ca",
    "parse_ca_pem",
    "server_without_tls",
    "tls_downgrade",
    "unix_socket_refusal",
    "warn_if_unencrypted",
]

# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code.
_NOT_YET_VALID, _EXPIRED = 9, 10
_UNTRUSTED = frozenset({2, 18, 19, 20, 21})
_NAME_MISMATCH = frozenset({62, 64})


class TlsProblem(StrEnum):
    """What went wrong; check-connection gives each its own advice and exit code."""

    CA_MISSING = "ca-missing"
    CA_INVALID = "ca-invalid"
    CLIENT_CERT = "client-certificate"
    SERVER_CERT_EXPIRED = "server-certificate-expired"
    UNTRUSTED_SERVER = "untrusted-server-certificate"
    HOST_NAME_MISMATCH = "host-name-mismatch"
    SERVER_WITHOUT_TLS = "server-without-tls"
    DOWNGRADE = "tls-downgrade"
    HANDSHAKE = "handshake-failed"


class TlsError(Unavailable):
    """TLS cannot be set up as configured; the message names the cause and the fix."""

    def __init__(self, problem: TlsProblem, message: str) -> None:
        self.problem = problem
        super().__init__(message)


@dataclass(frozen=True)
class CaCertificate:
    """One certificate of the configured CA bundle, as check-connection reports it."""

    subject: str
    not_before: datetime
    not_after: datetime
    pem: str  # the certificate alone, as PEM: what the TLS context trusts

    def days_left(self, now: datetime | None = None) -> int:
        return (self.not_after - (now or datetime.now(UTC))).days


@dataclass(frozen=True)
class LoadedCa:
    """The CA bundle from DB_CA_CERT_PATH or DB_CA_CERT: its PEM text and certificates."""

    source: str
    pem: str
    certificates: tuple[CaCertificate, ...]


def decode_ca_base64(value: str) -> bytes:
    """The PEM bytes of a DB_CA_CERT value (base64, whitespace ignored)."""
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise TlsError(
            TlsProblem.CA_INVALID,
            "DB_CA_CERT is not valid base64: encode the PEM file with `gateway encode-cert PATH`",
        ) from None


def parse_ca_pem(pem: bytes, source: str) -> tuple[CaCertificate, ...]:
    """The CA certificates in a PEM bundle (text around them ignored); TlsError if there are none,
    one is malformed or is no CA's, or the bundle holds a private key."""
    # cryptography costs ~30 ms at start-up; only a configured CA certificate is read with it.
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if _PRIVATE_KEY in pem:
        # Never passed on: encode-cert would publish it, and DB_CA_CERT is set on hosts' dashboards.
        raise TlsError(
            TlsProblem.CA_INVALID,
            f"{source} holds a private key beside the certificate: a CA file holds certificates only. "
            "Remove the key block, keep the key private, and do not publish the file as it is",
        )
    try:
        loaded = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise TlsError(
            TlsProblem.CA_INVALID,
            f"{source} is not a PEM certificate (expected -----BEGIN CERTIFICATE-----): "
            "download the CA certificate from your database provider again",
        ) from None
    for cert in loaded:
        reason = _not_an_authority(cert)
        if reason:
            raise TlsError(
                TlsProblem.CA_INVALID,
                f"{source}: {_common_name(cert)!r} is a server's certificate, not a CA's "
                f"({reason}): use the CA certificate that signed it, from your database provider",
            )
    return tuple(
        CaCertificate(
            subject=_common_name(cert),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            pem=cert.public_bytes(Encoding.PEM).decode("ascii"),
        )
        for cert in loaded
    )


_PRIVATE_KEY = b"PRIVATE KEY-----"  # the end of any key block's line: RSA, EC, ENCRYPTED, PKCS#8


def _not_an_authority(cert: x509.Certificate) -> str | None:
    """Why `cert` is no CA's, or None if it is one. Without basicConstraints only a self-signed
    certificate (an old root) is taken as a CA, as OpenSSL does: any other is a server's."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        try:
            cert.verify_directly_issued_by(cert)  # its issuer's name is its own, and so is the key
        except (ValueError, TypeError, InvalidSignature):
            return "no basicConstraints, and not self-signed"
        return None
    return None if is_ca else "basicConstraints CA:FALSE"


def check_ca_dates(certificates: tuple[CaCertificate, ...], source: str) -> None:
    """TlsError when every certificate of the bundle has expired."""
    now = datetime.now(UTC)
    if all(cert.not_after < now for cert in certificates):
        raise TlsError(
            TlsProblem.CA_INVALID,
            f"{source}: the CA certificate expired on {certificates[0].not_after:%Y-%m-%d}: "
            "download the current CA certificate from your database provider",
        )


def _common_name(cert: x509.Certificate) -> str:
    from cryptography.x509.oid import NameOID

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def ca_mode(settings: Settings) -> str:
    """DB_SSL_CA_MODE, or what it means unset: `file` when a CA is configured, else `system`."""
    if settings.db_ssl_ca_mode is not None:
        return settings.db_ssl_ca_mode
    return "system" if settings.db_ca_cert_path is None and settings.db_ca_cert is None else "file"


def load_ca(settings: Settings) -> LoadedCa | None:
    """The configured CA (DB_CA_CERT_PATH first, then DB_CA_CERT), or None when only the system's is used."""
    if ca_mode(settings) == "system":
        return None
    if settings.db_ca_cert_path is not None:
        source = f"DB_CA_CERT_PATH {settings.db_ca_cert_path}"
        try:
            pem = settings.db_ca_cert_path.read_bytes()
        except OSError as exc:
            raise TlsError(
                TlsProblem.CA_MISSING,
                f"{source} cannot be read ({exc.strerror}): put your provider's CA certificate "
                "there (e.g. certs/ca.pem) or correct the path",
            ) from None
    elif settings.db_ca_cert is not None:
        source = "DB_CA_CERT"
        pem = decode_ca_base64(settings.db_ca_cert.get_secret_value())
    else:
        return None
    certificates = parse_ca_pem(pem, source)
    check_ca_dates(certificates, source)
    return LoadedCa(source=source, pem="".join(c.pem for c in certificates), certificates=certificates)


def client_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The context for DB_SSL=true: chain always verified, host name too under verify-full.

    Trusted CAs per DB_SSL_CA_MODE: the CA file alone, the system store alone, or both (an RDS
    Proxy presents an ACM certificate the system trusts, the instance behind it one of the RDS CA).
    """
    return None if _tls_off(settings) else _context_trusting(settings, load_ca(settings))


def _context_trusting(settings: Settings, ca: LoadedCa | None) -> ssl.SSLContext:
    if ca is not None and ca_mode(settings) == "file":
        context = ssl.create_default_context(cadata=ca.pem)
    else:
        context = ssl.create_default_context()
        if ca is not None:
            context.load_verify_locations(cadata=ca.pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = settings.db_ssl_mode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED
    if settings.db_ssl_cert is not None and settings.db_ssl_key is not None:
        _load_client_certificate(context, settings.db_ssl_cert, settings.db_ssl_key)
    return context


class ClientTls:
    """The SSLContext for each new connection, made again once DB_CA_CERT_PATH, DB_SSL_CERT or
    DB_SSL_KEY changes on disk: a CA replaced for a provider's rotation is used without a restart.

    A changed file that cannot be used is refused as at start-up (TlsError), never passed over
    for the context of the file it replaced.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._off = _tls_off(settings)
        files = (settings.db_ca_cert_path, settings.db_ssl_cert, settings.db_ssl_key)
        self._files = tuple(path for path in files if path is not None)
        self._stamp: tuple[object, ...] | None = None
        self._context: ssl.SSLContext | None = None
        self._ca: LoadedCa | None = None

    def context(self) -> ssl.SSLContext | None:
        """The context new connections use now (None when DB_SSL is off); TlsError if it cannot be made."""
        if self._off:
            return None
        stamp = tuple(_file_stamp(path) for path in self._files)
        if stamp != self._stamp:
            ca = load_ca(self._settings)
            self._context, self._ca = _context_trusting(self._settings, ca), ca
            self._stamp = stamp
        return self._context

    def explain(self, exc: BaseException, host: str, port: int) -> TlsError | None:
        """explain_tls_failure, knowing the CA the connections trust."""
        return explain_tls_failure(exc, host, port, self._ca)


def _file_stamp(path: Path) -> object:
    """What changes when `path` is rewritten or replaced (a renamed file, a remounted secret)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class _EncryptedKey(Exception):
    pass


def _refuse_passphrase() -> str:
    # Called by OpenSSL only for an encrypted key; without it OpenSSL would prompt on the terminal.
    raise _EncryptedKey


def _load_client_certificate(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        context.load_cert_chain(cert, key, password=_refuse_passphrase)
    except _EncryptedKey:
        raise TlsError(
            TlsProblem.CLIENT_CERT,
            f"DB_SSL_KEY {key} is encrypted with a passphrase: give the key unencrypted "
            "(openssl pkey -in KEY -out key.pem) and keep the file private (chmod 600)",
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(
            TlsProblem.CLIENT_CERT,
            f"DB_SSL_CERT/DB_SSL_KEY cannot be loaded ({type(exc).__name__}): "
            "give the PEM client certificate and its unencrypted private key",
        ) from None


def explain_tls_failure(
    exc: BaseException, host: str, port: int, ca: LoadedCa | None = None
) -> TlsError | None:
    """A TlsError naming cause and fix if `exc` (or what caused it) is a TLS failure, else None.
    `ca`: the configured CA the connection trusted, to tell its expiry from the server's."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TlsError):
            return seen
        if isinstance(seen, ssl.SSLCertVerificationError):
            return _verification_failure(seen, host, port, ca)
        if isinstance(seen, ssl.SSLError):
            return TlsError(
                TlsProblem.HANDSHAKE,
                f"TLS handshake with {host}:{port} failed ({seen.reason or seen}): "
                "check that the server accepts TLS 1.2 or newer and that DB_PORT is its TLS port",
            )
        if isinstance(seen, ConnectionError) and "rejected SSL upgrade" in str(seen):
            return server_without_tls(host, port)
        seen = seen.__cause__ or seen.__context__
    return None


def server_without_tls(host: str, port: int) -> TlsError:
    return TlsError(
        TlsProblem.SERVER_WITHOUT_TLS,
        f"the server at {host}:{port} does not offer TLS, and DB_SSL=true never falls back to "
        "plaintext: enable TLS on the server, or check DB_HOST/DB_PORT point at the managed database",
    )


def unix_socket_refusal(host: str) -> TlsError | None:
    """The refusal to log in over `host` when it is a Unix socket's directory (a PostgreSQL host
    starting with /), where TLS is never used; None for a network host."""
    if not host.startswith("/"):
        return None
    return TlsError(
        TlsProblem.SERVER_WITHOUT_TLS,
        f"{host} is a Unix socket, where PostgreSQL never uses TLS, and DB_SSL=true never connects "
        "without it: set the host to the server's network name, or DB_SSL=false for a local socket",
    )


def tls_downgrade(host: str, port: int) -> TlsError:
    """A later connection's greeting no longer offers TLS: someone on the path may have removed it."""
    return TlsError(
        TlsProblem.DOWNGRADE,
        f"TLS downgrade: the MySQL server at {host}:{port} greeted a new connection without offering TLS; "
        "nothing was sent on it, no credentials included. Something on the network path may be "
        "stripping TLS: check the route to the database",
    )


def _verification_failure(
    exc: ssl.SSLCertVerificationError, host: str, port: int, ca: LoadedCa | None
) -> TlsError:
    code = exc.verify_code
    expired = [cert for cert in (ca.certificates if ca else ()) if cert.not_after < datetime.now(UTC)]
    if code == _EXPIRED and ca is not None and expired:
        # OpenSSL says "expired" of any certificate in the chain: here a trust anchor of the CA file.
        return TlsError(
            TlsProblem.CA_INVALID,
            f"{ca.source}: the CA certificate {expired[0].subject!r} expired on "
            f"{expired[0].not_after:%Y-%m-%d}, and the chain of {host}:{port} ends at an expired "
            "certificate: download the current CA certificate from your database provider",
        )
    if code == _EXPIRED:
        return TlsError(
            TlsProblem.SERVER_CERT_EXPIRED,
            f"the certificate of {host}:{port} has expired: the server must renew it "
            "(or this machine's clock is wrong)",
        )
    if code == _NOT_YET_VALID:
        return TlsError(
            TlsProblem.SERVER_CERT_EXPIRED,
            f"the certificate of {host}:{port} is not valid yet: check this machine's clock",
        )
    if code in _UNTRUSTED:
        return TlsError(
            TlsProblem.UNTRUSTED_SERVER,
            f"the certificate of {host}:{port} is not signed by the configured CA: download the CA "
            "certificate of this database from your provider into DB_CA_CERT_PATH (or DB_CA_CERT)",
        )
    if code in _NAME_MISMATCH:
        return TlsError(
            TlsProblem.HOST_NAME_MISMATCH,
            f"the certificate of {host}:{port} is not issued for {host!r}: set DB_HOST to the host "
            "name your provider gives (or DB_SSL_MODE=verify-ca to check only the chain)",
        )
    return TlsError(
        TlsProblem.HANDSHAKE,
        f"the certificate of {host}:{port} was refused ({exc.verify_message}): "
        "download the current CA certificate from your provider",
    )


def warn_if_unencrypted(settings: Settings) -> None:
    """In production, say at start-up that the database connection is plaintext (DB_SSL off)."""
    if settings.production and settings.db_backend != "sqlite" and _tls_off(settings):
        logging.getLogger("gateway").warning(
            "DB_SSL is off: the connection to the database is unencrypted; set DB_SSL=true"
        )


def _tls_off(settings: Settings) -> bool:
    return not settings.db_ssl or settings.db_ssl_mode == "disable"
