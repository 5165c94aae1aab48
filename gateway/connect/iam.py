"""RDS IAM authentication: every new connection logs in with a token signed for it, never a stored password.

A token is a presigned URL valid for 15 minutes, made locally from the AWS credentials (no
network call unless the credentials themselves must be fetched). One is made per new connection,
so no connection ever tries an expired token, and connections already open are not touched:
RDS checks the token only at login.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import boto3
from pydantic import SecretStr

from gateway.connect.aws_calls import BOTO_CONFIG, call_aws
from gateway.connect.aws_region import Region, configured_region, iam_signing_region
from gateway.connect.credentials import CredentialProvider, Credentials, SecretError
from gateway.errors import Unavailable
from gateway.settings import Settings

__all__ = ["IamTokenCredentials"]

log = logging.getLogger(__name__)

_SERVICE = "RDS IAM authentication"


class IamTokenCredentials:
    """The user and host of `base`, with a fresh RDS IAM authentication token as each login's password."""

    def __init__(self, settings: Settings, base: CredentialProvider) -> None:
        self._settings = settings
        self.base = base  # where the user name and host come from: DB_*, or the secret
        self._clients: dict[str, Any] = {}
        self._regions: dict[str, Region] = {}

    def region_for(self, host: str) -> Region:
        """The region tokens for `host` are signed for (the one in an RDS host name wins)."""
        known = self._regions.get(host)
        if known is not None:
            return known
        region = self._regions[host] = iam_signing_region(self._settings, host)
        configured = configured_region(self._settings)
        if configured.source in ("AWS_REGION", "AWS_DEFAULT_REGION") and region.name != configured.name:
            log.warning(
                "%s=%s, but %s is in %s: IAM tokens are signed for %s",
                configured.source,
                configured.name,
                host,
                region.name,
                region.name,
            )
        return region

    def _sign(self, credentials: Credentials, region: str) -> str:
        client = self._clients.get(region)
        if client is None:
            client = boto3.session.Session().client("rds", region_name=region, config=BOTO_CONFIG)
            self._clients[region] = client
        token: str = client.generate_db_auth_token(
            DBHostname=credentials.host, Port=credentials.port, DBUsername=credentials.user, Region=region
        )
        return token

    async def current(self) -> Credentials:
        return await self.base.current()

    async def rejected(self, refused: Credentials) -> list[Credentials] | None:
        return await self.base.rejected(refused)

    def accepted(self, credentials: Credentials) -> None:
        self.base.accepted(credentials)

    def reads(self) -> Mapping[tuple[str, str], int]:
        return self.base.reads()

    async def login(self, credentials: Credentials) -> Credentials:
        region = self.region_for(credentials.host)

        def refused(code: str) -> Unavailable:
            return SecretError(f"{_SERVICE}: signing a token for {credentials.host} failed ({code})")

        token = await call_aws(lambda: self._sign(credentials, region.name), _SERVICE, region, refused)
        return replace(credentials, password=SecretStr(token))
