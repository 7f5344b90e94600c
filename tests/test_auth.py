"""Token verification, including its cache (a remembered token never outlives its expiry), and
with an identity provider's public key: RS256 and ES256 accepted, every forgery refused."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import strategies as st

from hub.auth import TokenExpired, TokenVerifier, issue_token
from hub.config import Settings
from hub.errors import ConfigError, Unauthorized
from tests import fuzzcount
from tests.conftest import make_settings
from tests.identity_provider import hs256_with_key, idp_claims, public_pem


@pytest.fixture
def settings(tmp_path):
    return make_settings(f"sqlite:///{tmp_path}/hub.db", tmp_path / "var")


def test_a_cached_token_is_refused_once_it_expires(settings, monkeypatch):
    verifier = TokenVerifier(settings)
    token = issue_token(
        settings, user_id=uuid.uuid4(), org_id=uuid.uuid4(), role="vendor", ttl_s=60
    )
    assert verifier.verify(token).role == "vendor"

    # An hour later, for the cache (time.time) and for PyJWT (datetime.now) alike.
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(later, tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)

    with pytest.raises(TokenExpired):
        verifier.verify(token)


def test_a_token_signed_with_another_secret_is_refused(settings):
    claims = {
        "sub": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "role": "owner",
        "exp": int(time.time()) + 60,
    }
    forged = jwt.encode(claims, "not-the-hub-secret-" + "y" * 30, algorithm="HS256")

    with pytest.raises(Unauthorized, match="invalid token"):
        TokenVerifier(settings).verify(forged)


def test_an_unsigned_token_is_refused(settings):
    claims = {
        "sub": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "role": "owner",
        "exp": int(time.time()) + 60,
    }
    unsigned = jwt.encode(claims, None, algorithm="none")

    with pytest.raises(Unauthorized):
        TokenVerifier(settings).verify(unsigned)


def test_claims_become_the_principal(settings):
    user, org = uuid.uuid4(), uuid.uuid4()
    token = issue_token(settings, user_id=user, org_id=org, role="manager", name="Rae")

    principal = TokenVerifier(settings).verify(token)

    assert (principal.user_id, principal.org_id, principal.role, principal.name) == (
        user,
        org,
        "manager",
        "Rae",
    )


# --- An identity provider's key (HUB_JWT_PUBLIC_KEY): RS256 and ES256 -------------------------
# Keys are generated here; the verifier is given only the public half, as in a deployment.


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def idp_settings(tmp_path: Path, private_key: Any) -> Settings:
    """Settings whose HUB_JWT_PUBLIC_KEY holds the public half of `private_key` (HUB_JWT_SECRET
    is set too, and must not be what tokens are checked against)."""
    pem = tmp_path / "idp.pem"
    pem.write_bytes(public_pem(private_key))
    return make_settings(
        f"sqlite:///{tmp_path}/hub.db", tmp_path / "var", HUB_JWT_PUBLIC_KEY=str(pem)
    )


@pytest.mark.parametrize(("key_name", "algorithm"), [("rsa_key", "RS256"), ("ec_key", "ES256")])
def test_a_token_signed_by_the_identity_provider_is_accepted(
    tmp_path, request, key_name, algorithm
):
    private_key = request.getfixturevalue(key_name)
    claims = idp_claims()
    token = jwt.encode(claims, private_key, algorithm=algorithm)

    principal = TokenVerifier(idp_settings(tmp_path, private_key)).verify(token)

    assert (str(principal.user_id), str(principal.org_id), principal.role, principal.name) == (
        claims["sub"],
        claims["org_id"],
        "admin",
        "Ida Provider",
    )


@pytest.mark.parametrize(
    ("key_name", "algorithm", "other"),
    [
        (
            "rsa_key",
            "RS256",
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ),
        ("ec_key", "ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
    ],
)
def test_a_token_signed_by_another_key_is_refused(tmp_path, request, key_name, algorithm, other):
    forged = jwt.encode(idp_claims(), other(), algorithm=algorithm)

    with pytest.raises(Unauthorized, match="invalid token: Signature verification failed"):
        TokenVerifier(idp_settings(tmp_path, request.getfixturevalue(key_name))).verify(forged)


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_hs256_keyed_with_the_public_pem_is_refused(tmp_path, request, key_name):
    # The algorithm-confusion attack: the public key is public, so an HMAC made with it as the
    # secret must not pass for the identity provider's signature.
    private_key = request.getfixturevalue(key_name)
    forged = hs256_with_key(idp_claims(role="owner"), public_pem(private_key))

    with pytest.raises(Unauthorized, match="invalid token: The specified alg value is not allowed"):
        TokenVerifier(idp_settings(tmp_path, private_key)).verify(forged)


def test_hs256_with_the_hub_secret_is_refused_once_a_public_key_is_set(tmp_path, rsa_key):
    settings = idp_settings(tmp_path, rsa_key)
    forged = jwt.encode(idp_claims(), settings.jwt_secret, algorithm="HS256")

    with pytest.raises(Unauthorized, match="not allowed"):
        TokenVerifier(settings).verify(forged)


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_alg_none_is_refused_with_a_public_key(tmp_path, request, key_name):
    unsigned = jwt.encode(idp_claims(), None, algorithm="none")

    with pytest.raises(Unauthorized, match="invalid token"):
        TokenVerifier(idp_settings(tmp_path, request.getfixturevalue(key_name))).verify(unsigned)


@pytest.mark.parametrize(("key_name", "algorithm"), [("rsa_key", "RS256"), ("ec_key", "ES256")])
def test_an_expired_identity_provider_token_is_refused(tmp_path, request, key_name, algorithm):
    private_key = request.getfixturevalue(key_name)
    expired = jwt.encode(idp_claims(exp=int(time.time()) - 60), private_key, algorithm=algorithm)

    with pytest.raises(TokenExpired):
        TokenVerifier(idp_settings(tmp_path, private_key)).verify(expired)


@pytest.mark.parametrize(
    ("configured", "signed_with", "algorithm"),
    [("rsa_key", "ec_key", "ES256"), ("ec_key", "rsa_key", "RS256")],
)
def test_a_token_for_the_other_key_type_is_refused_not_an_error(
    tmp_path, request, configured, signed_with, algorithm
):
    # Before, RS256 and ES256 were both allowed for any key: an ES256 token against an RSA key
    # raised PyJWT's InvalidKeyError, which is not an InvalidTokenError, out of the verifier.
    token = jwt.encode(idp_claims(), request.getfixturevalue(signed_with), algorithm=algorithm)
    verifier = TokenVerifier(idp_settings(tmp_path, request.getfixturevalue(configured)))

    with pytest.raises(Unauthorized, match="invalid token: The specified alg value is not allowed"):
        verifier.verify(token)


def test_a_certificate_pem_is_read_for_its_public_key(tmp_path, ec_key):
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "idp.example")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ec_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(ec_key, hashes.SHA256())
    )
    pem = tmp_path / "idp.crt"
    pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    settings = make_settings(
        f"sqlite:///{tmp_path}/hub.db", tmp_path / "var", HUB_JWT_PUBLIC_KEY=str(pem)
    )
    token = jwt.encode(idp_claims(role="vendor"), ec_key, algorithm="ES256")

    assert TokenVerifier(settings).verify(token).role == "vendor"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a key at all\n", "is not a PEM public key or certificate"),
        (
            lambda: public_pem(ec.generate_private_key(ec.SECP384R1())),
            "verifies RS256 (an RSA key) or ES256 (an EC key on P-256)",
        ),
        (
            lambda: public_pem(ed25519.Ed25519PrivateKey.generate()),
            "holds a Ed25519PublicKey; the hub verifies RS256",
        ),
    ],
)
def test_a_public_key_the_hub_cannot_use_stops_startup_naming_it(tmp_path, content, message):
    pem = tmp_path / "idp.pem"
    pem.write_bytes(content() if callable(content) else content)
    settings = make_settings(
        f"sqlite:///{tmp_path}/hub.db", tmp_path / "var", HUB_JWT_PUBLIC_KEY=str(pem)
    )

    with pytest.raises(ConfigError, match=f"HUB_JWT_PUBLIC_KEY: {pem} .*{re.escape(message)}"):
        TokenVerifier(settings)


def test_issue_token_explains_that_it_cannot_mint_for_an_identity_provider(tmp_path, rsa_key):
    with pytest.raises(ConfigError, match="accepts only tokens your identity provider signs"):
        issue_token(
            idp_settings(tmp_path, rsa_key), user_id=uuid.uuid4(), org_id=uuid.uuid4(), role="owner"
        )


_claim = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["owner", "vendor", "\u0000", str(uuid.uuid4())])
    | st.lists(st.text(max_size=5), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    hostile=st.dictionaries(
        st.sampled_from(["sub", "org_id", "role", "name", "exp", "aud", "iss"]),
        _claim,
        max_size=3,
    ),
    name=st.text(max_size=30) | st.sampled_from(["\u0000", "Eve\u0000", "x" * 300]),
    dropped=st.sets(st.sampled_from(["sub", "org_id", "role", "exp"]), max_size=1),
)
def test_any_signed_claims_give_a_principal_or_unauthorized(
    tmp_path_factory, hostile, name, dropped
):
    """Whatever a token signed with the hub's own secret claims, verification answers with a
    principal the storage can take or with `Unauthorized`, never another exception (a 500).
    Valid claims with a generated name, some claims replaced by generated values or left out."""
    settings = make_settings("sqlite:///unused.db", tmp_path_factory.mktemp("var"))
    claims: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "role": "vendor",
        "name": name,
        "exp": int(time.time()) + 3600,
        **hostile,
    }
    for claim in dropped:
        claims.pop(claim)
    try:
        token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    except (TypeError, ValueError):
        hypothesis.reject()  # PyJWT will not sign these claims; nobody can send them signed
    fuzzcount.count("tokens")
    try:
        principal = TokenVerifier(settings).verify(token)
    except Unauthorized:
        return
    assert "\x00" not in principal.name and len(principal.name) <= 200
    assert principal.role in ("owner", "admin", "manager", "vendor")


@hypothesis.settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],  # read only
)
@hypothesis.given(token=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.hex()))
def test_any_token_text_is_unauthorized_not_a_crash(settings, token):
    fuzzcount.count("tokens")
    with pytest.raises(Unauthorized):
        TokenVerifier(settings).verify(token)
