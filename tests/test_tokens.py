"""Bearer tokens: keys made here (RSA, EC, a shared secret), a JWKS served on 127.0.0.1, tokens signed with
PyJWT, verified by the gateway's Authenticator exactly as a request's Authorization header is."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth.identity import Identity
from gateway.auth.issuing import issue_token
from gateway.auth.tokens import Authenticator, KeysUnavailable, TokenRejected, authenticator_for, warn_if_open
from gateway.settings import Settings, SettingsError, load_settings
from tests.jwks_server import JwksServer

ROOT = Path(__file__).resolve().parent.parent
ISSUER = "https://club.example.auth0.com/"
AUDIENCE = "https://api.club.example"
SECRET = "a-shared-secret-for-tests-longer-than-32-bytes"
ALICE = "auth0|alice"


class Clock:
    """The JWKS cache's monotonic clock, moved by the test: the refetch interval passes without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def claims(**changes: Any) -> dict[str, Any]:
    """Claims a provider would issue for Alice; a change to None drops that claim."""
    now = int(time.time())
    values: dict[str, Any] = {"sub": ALICE, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class Signer:
    """A provider's private key, published in the JWKS under `kid`."""

    kid: str
    private: Any
    algorithm: str

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        family = (
            jwt.algorithms.RSAAlgorithm
            if isinstance(public, rsa.RSAPublicKey)
            else jwt.algorithms.ECAlgorithm
        )
        return {**family.to_jwk(public, as_dict=True), "kid": self.kid, "use": "sig"}

    def token(self, **changes: Any) -> str:
        return jwt.encode(
            claims(**changes), self.private, algorithm=self.algorithm, headers={"kid": self.kid}
        )

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def bearer(token: str) -> str:
    return f"Bearer {token}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token put together by hand, as an attacker would: HMAC-SHA256 with `secret`, or unsigned."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def settings(**values: Any) -> Settings:
    return load_settings(_env_file=None, **values)


@pytest.fixture(scope="module")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


@pytest.fixture(scope="module")
def ec_keys() -> dict[str, ec.EllipticCurvePrivateKey]:
    return {
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "ES384": ec.generate_private_key(ec.SECP384R1()),
    }


@pytest.fixture
def k1(rsa_keys: list[rsa.RSAPrivateKey]) -> Signer:
    return Signer("k1", rsa_keys[0], "RS256")


@pytest.fixture
def k2(rsa_keys: list[rsa.RSAPrivateKey]) -> Signer:
    return Signer("k2", rsa_keys[1], "RS256")


@pytest.fixture
async def jwks() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_authenticator(jwks: JwksServer, clock: Clock) -> AsyncIterator[Callable[..., Authenticator]]:
    """Authenticators over the JWKS server (plus any settings given), closed when the test ends."""
    made: list[Authenticator] = []

    def make(**values: Any) -> Authenticator:
        base = {"auth_jwks_url": jwks.url, "auth_issuer": ISSUER, "auth_audience": AUDIENCE}
        authenticator = Authenticator(settings(**{**base, **values}), clock=clock)
        made.append(authenticator)
        return authenticator

    yield make
    for authenticator in made:
        await authenticator.close()


async def refusal(authenticator: Authenticator, authorization: str) -> str:
    """The reason `authorization` is refused; it must never quote the token."""
    with pytest.raises(TokenRejected) as refused:
        await authenticator.identify(authorization)
    reason = str(refused.value)
    scheme, space, token = authorization.partition(" ")
    credential = token if space else scheme  # a header without a scheme is the credential itself
    assert not credential or credential not in reason
    return reason


# --- Valid tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["RS256", "PS256", "ES256", "ES384"])
async def test_a_valid_token_of_each_kind_names_the_person_with_their_roles(
    kind: str,
    rsa_keys: list[rsa.RSAPrivateKey],
    ec_keys: dict[str, ec.EllipticCurvePrivateKey],
    jwks: JwksServer,
    make_authenticator: Callable[..., Authenticator],
) -> None:
    signer = Signer(f"key-{kind}", ec_keys[kind] if kind.startswith("ES") else rsa_keys[0], kind)
    jwks.publish(signer.jwk())
    authenticator = make_authenticator()
    token = signer.token(roles=["admin", "coach"], email="alice@club.example", name="Alice Martin")
    identity = await authenticator.identify(bearer(token))
    assert identity == Identity(ALICE, frozenset({"admin", "coach"}), "alice@club.example", "Alice Martin")
    assert identity.admin


async def test_a_shared_secret_token_names_the_person() -> None:
    authenticator = Authenticator(settings(auth_jwt_secret=SECRET))
    token = jwt.encode(claims(roles=["member"], iss=None, aud=None), SECRET.encode(), algorithm="HS256")
    identity = await authenticator.identify(bearer(token))
    assert identity == Identity(ALICE, frozenset({"member"}))
    assert identity is not None and not identity.admin


async def test_no_authorization_header_is_anonymous(make_authenticator: Callable[..., Authenticator]) -> None:
    assert await make_authenticator().identify(None) is None


async def test_roles_come_from_the_configured_claim() -> None:
    keycloak = Authenticator(settings(auth_jwt_secret=SECRET, auth_roles_claim="realm_access.roles"))
    token = jwt.encode(claims(realm_access={"roles": ["admin"]}), SECRET.encode(), algorithm="HS256")
    assert (await keycloak.identify(bearer(token))) == Identity(ALICE, frozenset({"admin"}))

    auth0 = Authenticator(settings(auth_jwt_secret=SECRET, auth_roles_claim="https://club.example/roles"))
    token = jwt.encode(
        claims(**{"https://club.example/roles": ["admin"]}), SECRET.encode(), algorithm="HS256"
    )
    assert (await auth0.identify(bearer(token))) == Identity(ALICE, frozenset({"admin"}))

    # The default claim is `roles`; a token without it has none.
    plain = Authenticator(settings(auth_jwt_secret=SECRET))
    token = jwt.encode(
        claims(**{"https://club.example/roles": ["admin"]}), SECRET.encode(), algorithm="HS256"
    )
    assert (await plain.identify(bearer(token))) == Identity(ALICE, frozenset())


async def test_without_audience_or_issuer_configured_a_token_carrying_them_is_accepted() -> None:
    authenticator = Authenticator(settings(auth_jwt_secret=SECRET))
    token = jwt.encode(claims(), SECRET.encode(), algorithm="HS256")
    assert (await authenticator.identify(bearer(token))) == Identity(ALICE, frozenset())


# --- Key rotation and the JWKS cache -----------------------------------------------------------------


async def test_a_rotated_key_is_picked_up_without_restart_and_the_withdrawn_one_stops_verifying(
    k1: Signer, k2: Signer, jwks: JwksServer, clock: Clock, make_authenticator: Callable[..., Authenticator]
) -> None:
    jwks.publish(k1.jwk())
    authenticator = make_authenticator()
    assert await authenticator.identify(bearer(k1.token())) is not None
    assert await authenticator.identify(bearer(k1.token(sub="bob"))) is not None
    assert jwks.requests == 1  # the key is cached

    jwks.publish(k2.jwk())
    clock.advance(31)
    identity = await authenticator.identify(bearer(k2.token(sub="carol")))
    assert identity is not None and identity.subject == "carol"
    assert jwks.requests == 2
    assert "no key with kid 'k1'" in await refusal(authenticator, bearer(k1.token(sub="dave")))


async def test_twenty_concurrent_tokens_with_a_new_kid_cause_one_fetch(
    k1: Signer, k2: Signer, jwks: JwksServer, clock: Clock, make_authenticator: Callable[..., Authenticator]
) -> None:
    jwks.publish(k1.jwk())
    authenticator = make_authenticator()
    await authenticator.identify(bearer(k1.token()))
    jwks.publish(k1.jwk(), k2.jwk())
    clock.advance(31)

    subjects = [f"member-{n}" for n in range(20)]
    identities = await asyncio.gather(*(authenticator.identify(bearer(k2.token(sub=s))) for s in subjects))
    assert [identity.subject if identity else None for identity in identities] == subjects
    assert jwks.requests == 2


async def test_a_request_that_goes_away_does_not_cancel_the_fetch_others_wait_for(
    k1: Signer, jwks: JwksServer, make_authenticator: Callable[..., Authenticator]
) -> None:
    jwks.publish(k1.jwk())
    jwks.held = True
    authenticator = make_authenticator()
    first = asyncio.create_task(authenticator.identify(bearer(k1.token())))
    await asyncio.wait_for(jwks.requested.wait(), 10)
    second = asyncio.create_task(authenticator.identify(bearer(k1.token(sub="bob"))))
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    jwks.release()
    identity = await asyncio.wait_for(second, 10)
    assert identity is not None and identity.subject == "bob"
    assert jwks.requests == 1


async def test_twenty_concurrent_tokens_on_a_cold_cache_cause_one_fetch(
    k1: Signer, jwks: JwksServer, make_authenticator: Callable[..., Authenticator]
) -> None:
    jwks.publish(k1.jwk())
    authenticator = make_authenticator()
    results = await asyncio.gather(
        *(authenticator.identify(bearer(k1.token(sub=f"m{n}"))) for n in range(20))
    )
    assert all(result is not None for result in results)
    assert jwks.requests == 1


async def test_twenty_concurrent_tokens_with_an_unpublished_kid_cause_at_most_one_fetch(
    rsa_keys: list[rsa.RSAPrivateKey],
    k1: Signer,
    jwks: JwksServer,
    make_authenticator: Callable[..., Authenticator],
) -> None:
    jwks.publish(k1.jwk())
    authenticator = make_authenticator()
    ghost = Signer("ghost", rsa_keys[2], "RS256")
    results = await asyncio.gather(
        *(authenticator.identify(bearer(ghost.token(sub=f"m{n}"))) for n in range(20)), return_exceptions=True
    )
    assert all(isinstance(result, TokenRejected) for result in results)
    assert jwks.requests == 1


async def test_within_the_refetch_interval_an_unknown_kid_is_refused_without_a_fetch(
    k1: Signer, k2: Signer, jwks: JwksServer, clock: Clock, make_authenticator: Callable[..., Authenticator]
) -> None:
    jwks.publish(k1.jwk())
    authenticator = make_authenticator()
    await authenticator.identify(bearer(k1.token()))
    jwks.publish(k1.jwk(), k2.jwk())

    clock.advance(29)
    assert "no key with kid 'k2'" in await refusal(authenticator, bearer(k2.token()))
    assert jwks.requests == 1
    clock.advance(1)
    assert await authenticator.identify(bearer(k2.token())) is not None
    assert jwks.requests == 2


async def test_the_keys_are_fetched_again_once_old(
    k1: Signer, k2: Signer, jwks: JwksServer, clock: Clock, make_authenticator: Callable[..., Authenticator]
) -> None:
    jwks.publish(k1.jwk())
    authenticator = make_authenticator()
    await authenticator.identify(bearer(k1.token()))
    jwks.publish(k2.jwk())  # k1 withdrawn, say after a leak
    clock.advance(599)
    assert await authenticator.identify(bearer(k1.token(sub="bob"))) is not None
    clock.advance(1)
    assert "no key with kid 'k1'" in await refusal(authenticator, bearer(k1.token(sub="carol")))
    assert jwks.requests == 2


async def test_keys_already_fetched_keep_working_while_the_jwks_is_down(
    k1: Signer, jwks: JwksServer, clock: Clock, make_authenticator: Callable[..., Authenticator]
) -> None:
    jwks.publish(k1.jwk())
    authenticator = make_authenticator()
    await authenticator.identify(bearer(k1.token()))
    jwks.status = 503
    clock.advance(601)
    assert await authenticator.identify(bearer(k1.token(sub="bob"))) is not None
    assert jwks.requests == 2


async def test_a_jwks_that_cannot_be_fetched_refuses_tokens_until_it_recovers(
    k1: Signer, jwks: JwksServer, clock: Clock, make_authenticator: Callable[..., Authenticator]
) -> None:
    jwks.publish(k1.jwk())
    jwks.status = 503
    authenticator = make_authenticator()
    with pytest.raises(KeysUnavailable, match="HTTP 503"):
        await authenticator.identify(bearer(k1.token()))
    jwks.status = 200
    with pytest.raises(KeysUnavailable):  # the next fetch waits for the interval
        await authenticator.identify(bearer(k1.token()))
    assert jwks.requests == 1
    clock.advance(30)
    assert await authenticator.identify(bearer(k1.token())) is not None


GARBLED_JWK_SETS = {
    "nested deeper than the parser's stack": b"[" * 100_000 + b"]" * 100_000,
    "an EC key whose curve is a list": json.dumps({"keys": [{"kty": "EC", "crv": ["P-256"]}]}).encode(),
    "an OKP key whose curve is an object": json.dumps({"keys": [{"kty": "OKP", "crv": {}}]}).encode(),
}


@pytest.mark.parametrize("case", list(GARBLED_JWK_SETS))
async def test_a_garbled_jwks_leaves_tokens_unjudged_until_it_recovers(
    case: str, k1: Signer, jwks: JwksServer, clock: Clock, make_authenticator: Callable[..., Authenticator]
) -> None:
    # Such a document raised out of the fetch: a 500, then "no key with kid" (a 401) for valid tokens.
    jwks.publish(k1.jwk())
    jwks.body = GARBLED_JWK_SETS[case]
    authenticator = make_authenticator()
    for _ in range(2):
        with pytest.raises(KeysUnavailable):
            await authenticator.identify(bearer(k1.token()))
    assert jwks.requests == 1
    jwks.body = None
    clock.advance(30)
    assert await authenticator.identify(bearer(k1.token())) is not None


async def test_an_unreachable_jwks_is_reported_as_unavailable(k1: Signer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    authenticator = Authenticator(settings(auth_jwks_url=url, auth_issuer=ISSUER, auth_audience=AUDIENCE))
    try:
        with pytest.raises(KeysUnavailable, match="unreachable"):
            await authenticator.identify(bearer(k1.token()))
    finally:
        await authenticator.close()


# --- Refusals -----------------------------------------------------------------------------------


def forged(case: str, k1: Signer, other: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> str:
    """The Authorization header for one kind of bad token."""
    now = int(time.time())
    if case == "expired":
        return bearer(k1.token(exp=now - 120, iat=now - 720))
    if case == "not yet valid (nbf)":
        return bearer(k1.token(nbf=now + 120))
    if case == "issued in the future (iat)":
        return bearer(k1.token(iat=now + 120))
    if case == "wrong issuer":
        return bearer(k1.token(iss="https://evil.example/"))
    if case == "wrong audience":
        return bearer(k1.token(aud="https://another-api.example"))
    if case == "bad signature":
        return bearer(Signer("k1", other, "RS256").token())
    if case == "payload changed after signing":
        header, _, signature = k1.token().split(".")
        return bearer(f"{header}.{b64(json.dumps(claims(roles=['admin'])).encode())}.{signature}")
    if case == "alg none":
        return bearer(hand_signed({"alg": "none", "kid": "k1"}, claims(), None))
    if case == "HS256 signed with the RSA public key":
        return bearer(hand_signed({"alg": "HS256", "kid": "k1", "typ": "JWT"}, claims(), k1.public_pem()))
    if case == "HS256 signed with another secret":
        return bearer(jwt.encode(claims(), b"another-secret-that-is-long-enough-too", algorithm="HS256"))
    if case == "ES256 on an RSA key's kid":
        return bearer(jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "k1"}))
    if case == "unpublished kid":
        return bearer(Signer("ghost", other, "RS256").token())
    if case == "no sub":
        return bearer(k1.token(sub=None))
    if case == "sub too long":
        return bearer(k1.token(sub="s" * 256))
    if case == "NUL in sub":
        return bearer(k1.token(sub="ada\u0000"))
    if case == "lone surrogate in sub":
        return bearer(k1.token(sub="ada\ud800"))
    if case == "no exp":
        return bearer(k1.token(exp=None))
    if case == "exp past any float":
        return bearer(k1.token(exp=10**400))
    if case == "exp a string past any float":
        return bearer(k1.token(exp="9" * 400))
    if case == "roles not a list":
        return bearer(k1.token(roles={"admin": True}))
    if case == "alg not a string":
        return bearer(hand_signed({"alg": ["RS256"], "kid": "k1"}, claims(), None))
    if case == "kid too long":
        return bearer(jwt.encode(claims(), k1.private, algorithm="RS256", headers={"kid": "k" * 1000}))
    if case == "4 MB, as a socket's connection_init may carry":
        return bearer(k1.token(padding="x" * 4_000_000))
    if case == "garbage":
        return "Bearer not.a.token"
    if case == "empty bearer":
        return "Bearer "
    if case == "Basic scheme":
        return "Basic " + base64.b64encode(b"alice:password").decode()
    if case == "no scheme":
        return k1.token()
    if case == "a bare secret":
        return "hunterSECRET"
    raise AssertionError(case)


REFUSALS = {
    "expired": "expired",
    "not yet valid (nbf)": "not yet valid",
    "issued in the future (iat)": "not yet valid",
    "wrong issuer": "issuer",
    "wrong audience": "audience",
    "bad signature": "bad signature",
    "payload changed after signing": "bad signature",
    "alg none": "alg 'none' is not accepted",
    "HS256 signed with the RSA public key": "bad signature",
    "HS256 signed with another secret": "bad signature",
    "ES256 on an RSA key's kid": "does not fit",
    "unpublished kid": "no key with kid 'ghost'",
    "no sub": "'sub' is missing",
    "sub too long": "'sub' must be at most 255 characters",
    "NUL in sub": "none of them control characters",
    "lone surrogate in sub": "or lone surrogates",
    "no exp": "'exp' is missing",
    "exp past any float": "'exp' is not a time",
    "exp a string past any float": "'exp' is not a time",
    "roles not a list": "'roles' must be a list",
    "alg not a string": "'alg' is missing or not a string",
    "kid too long": "'kid' is not a string of at most 256 characters",
    "4 MB, as a socket's connection_init may carry": "longer than 16384 characters",
    "garbage": "malformed",
    "empty bearer": "empty bearer",
    "Basic scheme": "the Authorization scheme is not Bearer: send 'Bearer <token>'",
    "no scheme": "the Authorization header has no scheme: send 'Bearer <token>'",
    "a bare secret": "the Authorization header has no scheme: send 'Bearer <token>'",
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_bad_token_is_refused_with_a_reason_that_does_not_quote_it(
    case: str,
    k1: Signer,
    rsa_keys: list[rsa.RSAPrivateKey],
    ec_keys: dict[str, ec.EllipticCurvePrivateKey],
    jwks: JwksServer,
    make_authenticator: Callable[..., Authenticator],
) -> None:
    jwks.publish(k1.jwk())
    # Both families configured: an HS256 token is checked against the secret, never a JWKS key.
    authenticator = make_authenticator(auth_jwt_secret=SECRET, auth_leeway=0)
    assert await authenticator.identify(bearer(k1.token())) is not None
    assert REFUSALS[case] in await refusal(authenticator, forged(case, k1, rsa_keys[2], ec_keys["ES256"]))


async def test_a_key_that_names_its_algorithm_verifies_no_other(
    k1: Signer, jwks: JwksServer, make_authenticator: Callable[..., Authenticator]
) -> None:
    jwks.publish({**k1.jwk(), "alg": "RS256"})
    authenticator = make_authenticator()
    assert await authenticator.identify(bearer(k1.token())) is not None
    same_key_other_alg = Signer("k1", k1.private, "PS256").token()
    assert "alg 'PS256' does not fit JWKS key 'k1'" in await refusal(
        authenticator, bearer(same_key_other_alg)
    )


async def test_with_a_jwks_alone_hs256_is_refused_even_signed_with_the_public_key(
    k1: Signer, jwks: JwksServer, make_authenticator: Callable[..., Authenticator]
) -> None:
    jwks.publish(k1.jwk())
    authenticator = make_authenticator()
    confused = hand_signed({"alg": "HS256", "kid": "k1", "typ": "JWT"}, claims(), k1.public_pem())
    assert "alg 'HS256' is not accepted" in await refusal(authenticator, bearer(confused))


async def test_with_a_secret_alone_asymmetric_tokens_are_refused(k1: Signer) -> None:
    authenticator = Authenticator(settings(auth_jwt_secret=SECRET))
    assert "alg 'RS256' is not accepted" in await refusal(authenticator, bearer(k1.token()))


async def test_a_symmetric_key_in_the_jwks_is_never_used(jwks: JwksServer, clock: Clock) -> None:
    shared = b"a-symmetric-key-somebody-put-in-the-jwks"
    jwks.publish({"kty": "oct", "kid": "oct", "k": b64(shared), "alg": "HS256"})
    authenticator = Authenticator(
        settings(auth_jwks_url=jwks.url, auth_issuer=ISSUER, auth_audience=AUDIENCE), clock=clock
    )
    try:
        token = jwt.encode(claims(), shared, algorithm="HS256", headers={"kid": "oct"})
        assert "not accepted" in await refusal(authenticator, bearer(token))
        token = hand_signed({"alg": "RS256", "kid": "oct"}, claims(), shared)
        assert "no RSA, EC or OKP signing key" in await refusal(authenticator, bearer(token))
    finally:
        await authenticator.close()


# --- Leeway and expiry ------------------------------------------------------------------------------


async def test_leeway_accepts_a_little_clock_skew_and_no_more() -> None:
    now = int(time.time())
    expired_10s_ago = jwt.encode(claims(exp=now - 10, iat=now - 600), SECRET.encode(), algorithm="HS256")
    valid_in_10s = jwt.encode(claims(nbf=now + 10, iat=now + 10), SECRET.encode(), algorithm="HS256")
    expired_60s_ago = jwt.encode(claims(exp=now - 60, iat=now - 600), SECRET.encode(), algorithm="HS256")

    default = Authenticator(settings(auth_jwt_secret=SECRET))
    assert await default.identify(bearer(expired_10s_ago)) is not None
    assert await default.identify(bearer(valid_in_10s)) is not None
    assert "expired" in await refusal(default, bearer(expired_60s_ago))

    strict = Authenticator(settings(auth_jwt_secret=SECRET, auth_leeway=0))
    assert "expired" in await refusal(strict, bearer(expired_10s_ago))
    assert "not yet valid" in await refusal(strict, bearer(valid_in_10s))


async def test_a_token_accepted_before_is_refused_once_it_expires() -> None:
    authenticator = Authenticator(settings(auth_jwt_secret=SECRET, auth_leeway=0))
    token = jwt.encode(claims(exp=int(time.time()) + 2), SECRET.encode(), algorithm="HS256")
    assert await authenticator.identify(bearer(token)) is not None
    deadline = time.monotonic() + 10
    while True:
        try:
            await authenticator.identify(bearer(token))
        except TokenRejected as exc:
            assert "expired" in str(exc)
            break
        assert time.monotonic() < deadline, "the expired token is still accepted"
        await asyncio.sleep(0.1)


# --- Settings -----------------------------------------------------------------------------------


def test_a_secret_shorter_than_32_bytes_is_refused_without_showing_it() -> None:
    short = "thirty-one-byte-secret-value-xx"
    assert len(short.encode()) == 31
    with pytest.raises(SettingsError) as refused:
        settings(auth_jwt_secret=short)
    assert "AUTH_JWT_SECRET" in str(refused.value)
    assert "32 bytes" in str(refused.value)
    assert short not in str(refused.value)
    assert settings(auth_jwt_secret=short + "y").auth_jwt_secret is not None
    assert settings(auth_jwt_secret="é" * 16).auth_jwt_secret is not None  # 32 bytes in UTF-8


def test_production_refuses_to_start_without_sign_in_unless_explicitly_disabled() -> None:
    with pytest.raises(SettingsError) as refused:
        settings(app_env="production")
    assert "APP_ENV=production" in str(refused.value)
    assert "AUTH_DISABLED=true" in str(refused.value)
    assert settings(app_env="production", auth_disabled=True).auth_disabled
    assert settings(app_env="production", auth_jwt_secret=SECRET).production
    jwks = {"auth_jwks_url": "https://idp.example/.well-known/jwks.json", "auth_issuer": ISSUER}
    assert settings(app_env="production", auth_audience=AUDIENCE, **jwks).production


def test_a_jwks_needs_issuer_and_audience_and_https_in_production() -> None:
    url = "https://idp.example/.well-known/jwks.json"
    with pytest.raises(SettingsError, match="AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE"):
        settings(auth_jwks_url=url)
    with pytest.raises(SettingsError, match="AUTH_JWKS_URL needs AUTH_AUDIENCE"):
        settings(auth_jwks_url=url, auth_issuer=ISSUER)
    both = {"auth_issuer": ISSUER, "auth_audience": AUDIENCE}
    with pytest.raises(SettingsError, match="must be https:// with APP_ENV=production"):
        settings(app_env="production", auth_jwks_url="http://idp.example/jwks.json", **both)
    assert settings(app_env="production", auth_jwks_url="http://127.0.0.1:8080/jwks.json", **both).production
    with pytest.raises(SettingsError) as refused:
        settings(auth_jwks_url="idp.example/jwks", **both)
    assert "AUTH_JWKS_URL: 'idp.example/jwks' is not a URL" in str(refused.value)


def test_the_auth_defaults() -> None:
    defaults = settings()
    assert (defaults.auth_roles_claim, defaults.auth_anonymous_read, defaults.auth_leeway) == (
        "roles",
        True,
        30,
    )
    assert not defaults.auth_disabled
    assert defaults.auth_jwks_url is defaults.auth_jwt_secret is defaults.auth_issuer is None


def test_without_sign_in_configured_or_with_it_disabled_there_is_no_authenticator() -> None:
    assert authenticator_for(settings()) is None
    assert authenticator_for(settings(auth_jwt_secret=SECRET, auth_disabled=True)) is None
    assert isinstance(authenticator_for(settings(auth_jwt_secret=SECRET)), Authenticator)


def test_an_open_production_server_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_if_open(settings(auth_disabled=True))
        assert not caplog.records
        warn_if_open(settings(app_env="production", auth_disabled=True))
    assert "AUTH_DISABLED=true with APP_ENV=production" in caplog.text


# --- Commands -----------------------------------------------------------------------------------


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A command in a folder without .env, with only the given AUTH_*, DB_* and APP_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "DB_", "APP_", "CORS_"))}
    return subprocess.run(
        args, cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False
    )


async def test_gateway_token_prints_a_token_the_gateway_accepts(tmp_path: Path) -> None:
    env = {"AUTH_JWT_SECRET": SECRET, "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE}
    command = [sys.executable, "-m", "gateway", "token", "--sub", ALICE, "--email", "alice@club.example"]
    command += ["--name", "Alice Martin", "--role", "admin", "--role", "coach", "--ttl", "30m"]
    done = run(command, tmp_path, **env)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()

    authenticator = Authenticator(settings(**{key.lower(): value for key, value in env.items()}))
    identity = await authenticator.identify(bearer(token))
    assert identity == Identity(ALICE, frozenset({"admin", "coach"}), "alice@club.example", "Alice Martin")
    payload = jwt.decode(token, SECRET.encode(), algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)
    assert payload["exp"] - payload["iat"] == 1800


def test_gateway_token_without_a_secret_says_so(tmp_path: Path) -> None:
    done = run([sys.executable, "-m", "gateway", "token", "--sub", ALICE], tmp_path)
    assert done.returncode == 2
    assert "AUTH_JWT_SECRET is not set" in done.stderr
    assert done.stdout == ""


def test_gateway_token_refuses_a_lifetime_it_cannot_read(tmp_path: Path) -> None:
    done = run(
        [sys.executable, "-m", "gateway", "token", "--sub", ALICE, "--ttl", "5x"],
        tmp_path,
        AUTH_JWT_SECRET=SECRET,
    )
    assert done.returncode == 2
    assert "'5x' is not like 30m, 1h or 2d" in done.stderr


@pytest.mark.parametrize("ttl", ["9999999999d", "99999999d"])
def test_gateway_token_refuses_a_lifetime_no_expiry_can_say(ttl: str, tmp_path: Path) -> None:
    # Past what a timedelta, then a datetime, holds: each was a traceback.
    done = run(
        [sys.executable, "-m", "gateway", "token", "--sub", ALICE, "--ttl", ttl],
        tmp_path,
        AUTH_JWT_SECRET=SECRET,
    )
    assert done.returncode == 2
    assert "is longer than a token's expiry can say" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_short_secret_stops_the_command_without_showing_it(tmp_path: Path) -> None:
    short = "short-secret-value"
    done = run([sys.executable, "-m", "gateway", "token", "--sub", ALICE], tmp_path, AUTH_JWT_SECRET=short)
    assert done.returncode == 2
    assert "configuration error: AUTH_JWT_SECRET: must be at least 32 bytes" in done.stderr
    assert short not in done.stderr + done.stdout


def test_the_vercel_entry_refuses_production_without_sign_in_and_warns_when_it_is_disabled(
    tmp_path: Path,
) -> None:
    entry = [sys.executable, str(ROOT / "api" / "index.py")]
    refused = run(entry, tmp_path, APP_ENV="production")
    assert refused.returncode != 0
    assert "APP_ENV=production needs sign-in" in refused.stderr
    started = run(entry, tmp_path, APP_ENV="production", AUTH_DISABLED="true")
    assert started.returncode == 0, started.stderr
    assert "AUTH_DISABLED=true with APP_ENV=production" in started.stderr


def test_issue_token_puts_roles_under_the_configured_claim() -> None:
    configured = settings(auth_jwt_secret=SECRET, auth_roles_claim="https://club.example/roles")
    token = issue_token(configured, subject=ALICE, roles=["admin"])
    payload = jwt.decode(token, SECRET.encode(), algorithms=["HS256"])
    assert payload["https://club.example/roles"] == ["admin"]
    assert "iss" not in payload and "aud" not in payload
