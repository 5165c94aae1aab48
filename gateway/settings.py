"""Every setting of the gateway, read from the environment and `.env`, validated up front."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from dotenv.parser import parse_stream
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.datasources.registry import BACKENDS
from gateway.origins import AllowedOrigins

__all__ = ["DEFAULT_ALLOW_HEADERS", "DEVELOPMENT_ORIGINS", "Settings", "SettingsError", "load_settings"]

# Values of these settings never appear in an error message.
_SECRET_FIELDS = frozenset({"db_password", "db_ca_cert", "auth_jwt_secret", "metrics_token"})
# HS256 keys shorter than the hash output are brute-forceable (RFC 7518 section 3.2).
_MIN_SECRET_BYTES = 32
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# The Vite dev server, by either name: the CORS_ORIGINS of development when it is unset.
DEVELOPMENT_ORIGINS = ("http://localhost:5173", "http://127.0.0.1:5173")
# What Apollo Client (name, version, CSRF prevention), Sentry, OpenTelemetry and request tracing add.
DEFAULT_ALLOW_HEADERS = (
    "content-type",
    "authorization",
    "apollographql-client-name",
    "apollographql-client-version",
    "apollo-require-preflight",
    "sentry-trace",
    "baggage",
    "traceparent",
    "tracestate",
    "x-request-id",
)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
# The variable a .env line assigns, read without its value.
_ASSIGNED = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
# The longest a timeout or period may be: a day. Longer is a typo, and overflows the drivers.
_MAX_SECONDS = 86_400
# A duration: finite, at most a day, at least a millisecond: the unit PostgreSQL's statement_timeout
# and SQLite's busy timeout count in, where less would round to 0 ("no timeout").
_Seconds = Annotated[float, Field(ge=0.001, le=_MAX_SECONDS, allow_inf_nan=False)]


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable and the problem."""


class Settings(BaseSettings):
    """The gateway's configuration. Environment variable names are the field names upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        validate_default=True,
    )

    db_backend: str = "sqlite"  # a name in gateway.datasources.registry.BACKENDS
    db_sqlite_path: Path = Path("gateway.db")
    db_host: str = "localhost"
    db_port: int | None = Field(default=None, ge=1, le=65535)
    db_user: str = ""
    db_password: SecretStr = SecretStr("")
    db_name: str = ""

    db_ssl: bool = False
    db_ssl_mode: Literal["verify-full", "verify-ca", "disable"] = "verify-full"
    db_ca_cert_path: Path | None = None
    db_ca_cert: SecretStr | None = None
    db_ssl_cert: Path | None = None
    db_ssl_key: Path | None = None
    # Trusted CAs: unset means the CA file (DB_CA_CERT_PATH / DB_CA_CERT) if given, else the system's.
    db_ssl_ca_mode: Literal["file", "system", "both"] | None = None

    aws_secret_name: str | None = None
    aws_region: str | None = None  # unset: AWS_DEFAULT_REGION, the profile's, else ca-central-1
    aws_default_region: str | None = None
    aws_endpoint_url: str | None = None
    db_secret_fallback: bool | None = None  # unset: true in development, false in production
    db_secret_ttl: _Seconds = 300.0
    db_iam_auth: bool = False

    db_pool_max: int = Field(default=10, ge=1, le=1000)
    db_pool_min: int = Field(default=2, ge=0, le=1000)
    db_idle_timeout: _Seconds = 30.0
    db_connect_timeout: _Seconds = 5.0
    db_acquire_timeout: _Seconds = 10.0
    # false behind a transaction pooler (PgBouncer < 1.21, RDS Proxy): nothing kept on a connection.
    db_statement_cache: bool = True
    # A read replica for queries (docs/scaling.md); mutations stay on DB_HOST.
    db_read_host: str | None = None
    db_read_port: int | None = Field(default=None, ge=1, le=65535)

    host: str = "127.0.0.1"
    port: int = Field(default=3001, ge=1, le=65535)
    app_env: Literal["development", "production"] = "development"
    # Unset: DEVELOPMENT_ORIGINS in development, no cross-origin caller in production.
    cors_origins: Annotated[list[str] | None, NoDecode] = None
    cors_allow_credentials: bool = True
    cors_allow_headers: Annotated[list[str], NoDecode] = list(DEFAULT_ALLOW_HEADERS)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    # Queries the database can answer alone run as one JSON-building statement per root field.
    fast_path: bool = True
    # What the schema tells a stranger. Unset: on in development, off in production.
    introspection: bool | None = None
    graphiql: bool | None = None
    suggestions: bool | None = None

    # What one request may cost (docs: README, Limits); a React app's operations stay far below.
    max_query_tokens: int = Field(default=5000, ge=100)
    max_query_depth: int = Field(default=12, ge=2)
    max_aliases: int = Field(default=30, ge=0)
    max_root_fields: int = Field(default=20, ge=1)
    max_query_cost: int = Field(default=20_000, ge=1)
    request_timeout: _Seconds = 30.0
    db_statement_timeout: _Seconds = 10.0
    http_keepalive_timeout: _Seconds = 15.0

    # Persisted operations (docs/api.md#persisted-operations): Apollo's APQ, or only a manifest's.
    persisted_operations: Literal["off", "apq", "only"] = "apq"
    persisted_operations_manifest: Path | None = None
    apq_cache_size: int = Field(default=1000, ge=1)

    # Live updates (docs/live-updates.md): subscriptions over WebSocket and Server-Sent Events.
    # How often MySQL/MariaDB and SQLite are read.
    live_poll_interval: float = Field(default=1.0, ge=0.001, le=60, allow_inf_nan=False)
    live_keepalive: _Seconds = 15.0  # seconds between pings on an idle socket or stream
    subscriptions_max: int = Field(default=10_000, ge=1)  # open subscriptions on one instance
    subscriptions_per_connection: int = Field(default=50, ge=1)  # on one socket (queries included)
    subscription_buffer: int = Field(default=100, ge=1)  # updates one subscriber may fall behind

    # Observability (docs/observability.md): /metrics, and OpenTelemetry traces when an endpoint is set.
    metrics: bool | None = None  # unset: on in development; in production when METRICS_TOKEN is set
    metrics_token: SecretStr | None = None
    metrics_operation_names: int = Field(default=100, ge=0, le=10_000)
    otel_exporter_otlp_endpoint: str | None = None

    # Sign-in: tokens from an identity provider (JWKS) or signed with a shared secret (HS256).
    auth_jwks_url: str | None = None
    auth_jwt_secret: SecretStr | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_roles_claim: str = Field(default="roles", min_length=1)
    auth_anonymous_read: bool = True
    auth_leeway: float = Field(default=30.0, ge=0, le=_MAX_SECONDS, allow_inf_nan=False)
    auth_disabled: bool = False

    @field_validator("db_backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in BACKENDS:
            # Worded as pydantic words a Literal mismatch, so the message reads as it always has.
            quoted = [repr(name) for name in BACKENDS]
            expected = f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else quoted[0]
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    @field_validator("cors_origins", "cors_allow_headers", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            AllowedOrigins.parse(value)  # raises naming the first bad entry
        return value

    @field_validator("cors_allow_headers")
    @classmethod
    def _check_headers(cls, value: list[str]) -> list[str]:
        names = [name.lower() for name in value]
        for name in names:
            if name == "*" or not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a header name like x-request-id (list each header)")
        return names

    @field_validator("auth_jwks_url")
    @classmethod
    def _check_jwks_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r} is not a URL like https://example.auth0.com/.well-known/jwks.json")
        return value

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _check_otlp_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"{value!r} is not a URL like http://localhost:4318 (OTLP over HTTP)")
        return value

    @field_validator("auth_jwt_secret")
    @classmethod
    def _check_secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < _MIN_SECRET_BYTES:
            raise ValueError(
                f"must be at least {_MIN_SECRET_BYTES} bytes; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.persisted_operations == "only" and self.persisted_operations_manifest is None:
            raise ValueError(
                "PERSISTED_OPERATIONS=only needs PERSISTED_OPERATIONS_MANIFEST: the JSON of id -> document"
                " that graphql-codegen's client preset or Relay's compiler writes"
            )
        if self.persisted_operations_manifest is not None:
            from gateway.execution.persisted import load_manifest  # it reads the file: checked here, once

            load_manifest(self.persisted_operations_manifest)
        if self.db_pool_min > self.db_pool_max:
            raise ValueError(
                f"DB_POOL_MIN ({self.db_pool_min}) is greater than DB_POOL_MAX ({self.db_pool_max})"
            )
        if self.db_backend != "sqlite" and not self.aws_secret_name:
            for name in ("db_user", "db_name"):
                if not getattr(self, name):
                    raise ValueError(f"{name.upper()} is required when DB_BACKEND={self.db_backend}")
        if self.db_read_host is None and self.db_read_port is not None:
            raise ValueError("DB_READ_PORT needs DB_READ_HOST (the read replica's host)")
        if self.db_read_host is not None and self.db_backend != "postgres":
            raise ValueError(
                f"DB_READ_HOST is supported with DB_BACKEND=postgres only (got {self.db_backend}); unset it"
            )
        verified_tls = self.db_ssl and self.db_ssl_mode != "disable"
        if self.db_iam_auth and (self.db_backend == "sqlite" or not verified_tls):
            # A token is a password for 15 minutes: only a server whose certificate was checked gets it.
            raise ValueError(
                "DB_IAM_AUTH=true needs DB_SSL=true with DB_SSL_MODE=verify-full or verify-ca, and a postgres"
                " or mysql backend (an IAM token may only be sent over verified TLS)"
            )
        if self.db_ssl_ca_mode == "file" and self.db_ca_cert_path is None and self.db_ca_cert is None:
            raise ValueError("DB_SSL_CA_MODE=file needs DB_CA_CERT_PATH or DB_CA_CERT")
        if self.db_ssl_ca_mode == "both" and self.db_ca_cert_path is None and self.db_ca_cert is None:
            raise ValueError(
                "DB_SSL_CA_MODE=both needs DB_CA_CERT_PATH or DB_CA_CERT (the CA trusted with the system's)"
            )
        own_ca = self.db_ca_cert_path is not None or self.db_ca_cert is not None
        if (
            self.db_ssl
            and self.db_ssl_mode == "verify-ca"
            and (not own_ca or self.db_ssl_ca_mode in ("system", "both"))
        ):
            # The chain without the name: with the system's CAs, any publicly trusted certificate passes.
            raise ValueError(
                "DB_SSL_MODE=verify-ca trusts the CA alone, not the server's name: it needs your "
                "provider's CA (DB_CA_CERT_PATH or DB_CA_CERT) and no system store (DB_SSL_CA_MODE=file); "
                "with the system's CAs any publicly trusted certificate would pass. Otherwise use "
                "DB_SSL_MODE=verify-full"
            )
        if (self.db_ssl_cert is None) != (self.db_ssl_key is None):
            raise ValueError("DB_SSL_CERT and DB_SSL_KEY must be set together (mutual TLS)")
        if "*" in self.allowed_origins and self.cors_allow_credentials:
            # Browsers refuse the pair; CORS middleware then echo every origin, letting any site in.
            raise ValueError(
                "CORS_ORIGINS=* cannot be used with CORS_ALLOW_CREDENTIALS=true (any website could call the "
                "API with its visitors' credentials): list your origins, or set CORS_ALLOW_CREDENTIALS=false"
            )
        self._check_auth()
        return self

    def _check_auth(self) -> None:
        if self.auth_jwks_url:
            missing = [name for name in ("auth_issuer", "auth_audience") if not getattr(self, name)]
            if missing:
                raise ValueError(
                    f"AUTH_JWKS_URL needs {' and '.join(name.upper() for name in missing)} (the provider's "
                    "issuer and your API's audience), so tokens minted for another application are refused"
                )
            # Over plain HTTP anyone on the path could substitute their own keys.
            url = urlsplit(self.auth_jwks_url)
            if self.production and url.scheme == "http" and url.hostname not in _LOOPBACK_HOSTS:
                raise ValueError("AUTH_JWKS_URL must be https:// with APP_ENV=production")
        if self.production and not self.auth_disabled and not (self.auth_jwks_url or self.auth_jwt_secret):
            raise ValueError(
                "APP_ENV=production needs sign-in: set AUTH_JWKS_URL (with AUTH_ISSUER and AUTH_AUDIENCE) "
                "or AUTH_JWT_SECRET, or set AUTH_DISABLED=true to leave every query and mutation open"
            )

    @property
    def database_port(self) -> int:
        """The port to connect to: DB_PORT, else the backend's standard port."""
        return self.db_port or BACKENDS[self.db_backend].default_port or 0

    @property
    def read_port(self) -> int:
        """The read replica's port: DB_READ_PORT, else the primary's."""
        return self.db_read_port or self.database_port

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def allowed_origins(self) -> list[str]:
        """CORS_ORIGINS, else the Vite dev server in development and nothing in production."""
        if self.cors_origins is not None:
            return self.cors_origins
        return [] if self.production else list(DEVELOPMENT_ORIGINS)

    @property
    def introspection_enabled(self) -> bool:
        """Whether `__schema` and `__type` may be queried: INTROSPECTION, else only in development."""
        return not self.production if self.introspection is None else self.introspection

    @property
    def graphiql_enabled(self) -> bool:
        """Whether a browser opening /graphql gets GraphiQL: GRAPHIQL, else only in development."""
        return not self.production if self.graphiql is None else self.graphiql

    @property
    def suggestions_enabled(self) -> bool:
        """Whether errors suggest names ("Did you mean 'email'?"): SUGGESTIONS, else only in development."""
        return not self.production if self.suggestions is None else self.suggestions

    @property
    def metrics_enabled(self) -> bool:
        """Whether /metrics answers (and metrics are kept): METRICS, else in development, or in production
        when METRICS_TOKEN guards it."""
        if self.metrics is not None:
            return self.metrics
        return not self.production or self.metrics_token is not None

    @property
    def secret_fallback(self) -> bool:
        """Whether to use the environment's credentials when Secrets Manager is unreachable."""
        return not self.production if self.db_secret_fallback is None else self.db_secret_fallback


def _describe(error: Mapping[str, Any]) -> str:
    location = [str(part) for part in error.get("loc", ()) if part != "__root__"]
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if not location:
        return message
    field = location[0]
    if field not in _SECRET_FIELDS and error.get("type") != "value_error" and "input" in error:
        message = f"{message} (got {error['input']!r})"
    return f"{field.upper()}: {message}"


def _unparsable_lines(env_file: Any, encoding: str | None) -> Iterator[str]:
    """Each line of the .env file(s) python-dotenv cannot parse, named without its value.

    python-dotenv only warns and skips such a line, so the variable would silently keep its default
    (a password cut off by an unclosed quote then reads as the server refusing it).
    """
    if env_file is None:
        return
    for path in map(Path, [env_file] if isinstance(env_file, str | os.PathLike) else env_file):
        path = path.expanduser()
        if not path.is_file():
            continue
        with path.open(encoding=encoding) as stream:
            for binding in parse_stream(stream):
                if binding.error:
                    assigned = _ASSIGNED.match(binding.original.string)
                    name = f"{assigned.group(1)}: " if assigned else ""
                    yield f"{path} line {binding.original.line}: {name}cannot be parsed (a quote left open?)"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning a validation failure into one line per bad variable."""
    env_file = overrides.get("_env_file", Settings.model_config.get("env_file"))
    encoding = overrides.get("_env_file_encoding") or Settings.model_config.get("env_file_encoding")
    unparsable = list(_unparsable_lines(env_file, encoding))
    if unparsable:
        raise SettingsError("; ".join(unparsable))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(e) for e in exc.errors())) from None
