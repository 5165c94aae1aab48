"""Which AWS region to call, resolved as the AWS tools do, and what a host name or ARN says about it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import boto3

from gateway.settings import Settings

__all__ = ["DEFAULT_REGION", "Region", "iam_signing_region", "rds_host_region", "secret_region"]

DEFAULT_REGION = "ca-central-1"
# club.abc123.ca-central-1.rds.amazonaws.com, a proxy's name.proxy-abc.REGION.rds.amazonaws.com, .com.cn.
_RDS_HOST = re.compile(r"\.([a-z]{2}(?:-[a-z]+)+-\d+)\.rds\.amazonaws\.com(?:\.cn)?\.?$", re.IGNORECASE)
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:([a-z]{2}(?:-[a-z]+)+-\d+):")


@dataclass(frozen=True)
class Region:
    """A region and where it came from, so messages can say which setting to change."""

    name: str
    source: str

    def __str__(self) -> str:
        return self.name


def rds_host_region(host: str) -> str | None:
    """The region in an RDS endpoint name (`*.REGION.rds.amazonaws.com`), else None."""
    match = _RDS_HOST.search(host)
    return match.group(1).lower() if match else None


def configured_region(settings: Settings) -> Region:
    """AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region, else ca-central-1: the CLI's order."""
    if settings.aws_region:
        return Region(settings.aws_region, "AWS_REGION")
    if settings.aws_default_region:
        return Region(settings.aws_default_region, "AWS_DEFAULT_REGION")
    # The profile (AWS_PROFILE, ~/.aws/config): reading it is local, no network.
    profile_region = boto3.session.Session().region_name
    if profile_region:
        return Region(profile_region, "the AWS profile")
    return Region(DEFAULT_REGION, "the default")


def secret_region(settings: Settings) -> Region:
    """Where AWS_SECRET_NAME lives: the region in its ARN when it is one, else the configured region."""
    match = _SECRET_ARN.match(settings.aws_secret_name or "")
    if match:
        return Region(match.group(1), "the secret's ARN")
    return configured_region(settings)


def iam_signing_region(settings: Settings, host: str) -> Region:
    """The region an IAM token for `host` must be signed for: the one in an RDS host name, else configured."""
    from_host = rds_host_region(host)
    if from_host:
        return Region(from_host, f"the host name {host}")
    return configured_region(settings)
