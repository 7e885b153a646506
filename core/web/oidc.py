"""OpenID Connect for the console's single sign-on: the authorization code flow with PKCE, state and nonce (Authlib
for the protocol's pieces, joserfc for the JOSE ones), over campaignkit's own outbound HTTP client.

``OidcClient.begin`` makes the provider's authorization URL and the values the callback needs (kept by the caller,
signed, outside the URL); ``OidcClient.finish`` exchanges the code at the token endpoint and returns the ID token's
claims once checked: its signature against the provider's JWKS, and iss, aud, azp, exp, iat, nonce and at_hash.
Discovery (``<issuer>/.well-known/openid-configuration``) and the JWKS are cached; the JWKS is fetched again when a
token names a key it does not hold (the provider rotated its keys).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri, url_encode
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from ..outbound.client import HttpClient, HttpError, check_outbound_url, redacted
from ..settings import OidcSettings

log = logging.getLogger(__name__)

DISCOVERY_SECONDS = 3600  # how long the provider's metadata is kept before it is read again
LEEWAY_SECONDS = 60  # clock skew allowed between the provider and us on exp, iat and nbf
# Signature algorithms accepted on ID tokens: asymmetric only (never "none", nor HS256 keyed by the client secret).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class OidcError(Exception):
    """The flow failed: ``str(exc)`` for the person, ``reason`` for the audit record (never a token or a secret);
    ``status`` 502 when the provider failed, 400 when its answer was refused."""

    def __init__(self, message: str, reason: str, status: int = 502) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Pending:
    """What the callback needs to finish a sign-in that ``begin`` started."""

    state: str
    nonce: str
    verifier: str  # the PKCE code verifier; the provider saw only its S256 challenge

    def as_dict(self) -> dict[str, str]:
        return {"state": self.state, "nonce": self.nonce, "verifier": self.verifier}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pending | None:
        state, nonce, verifier = (data.get(key) for key in ("state", "nonce", "verifier"))
        if isinstance(state, str) and isinstance(nonce, str) and isinstance(verifier, str) and state and nonce:
            return cls(state, nonce, verifier)
        return None


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    auth_methods: tuple[str, ...]


class OidcClient:
    def __init__(self, settings: OidcSettings, redirect_uri: str) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self.http = HttpClient(ca_file=settings.ca_file, timeout_seconds=settings.timeout_seconds)
        self._provider: Provider | None = None
        self._read_at = 0.0
        self._keys: KeySet | None = None

    def begin(self) -> tuple[str, Pending]:
        """The URL to send the browser to, and what to keep for the callback."""
        provider = self.provider()
        pending = Pending(generate_token(43), generate_token(43), generate_token(64))
        url = add_params_to_uri(provider.authorization_endpoint, [
            ("response_type", "code"), ("client_id", self.settings.client_id), ("redirect_uri", self.redirect_uri),
            ("scope", " ".join(self.settings.scopes)), ("state", pending.state), ("nonce", pending.nonce),
            ("code_challenge", create_s256_code_challenge(pending.verifier)), ("code_challenge_method", "S256"),
        ])
        return url, pending

    def finish(self, code: str, pending: Pending) -> dict[str, Any]:
        """The checked claims of the ID token the code is exchanged for."""
        provider = self.provider()
        tokens = self._exchange(provider, code, pending)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("The identity provider answered without an ID token.", "no id_token in the token response")
        try:
            decoded = self._decode(provider, id_token)
            options: Any = {"iss": {"essential": True, "value": provider.issuer},
                            "aud": {"essential": True, "value": self.settings.client_id}}
            params = {"nonce": pending.nonce, "client_id": self.settings.client_id}
            if isinstance(tokens.get("access_token"), str):
                params["access_token"] = tokens["access_token"]
            claims = CodeIDToken(decoded.claims, decoded.header, options, params)
            claims.validate(leeway=LEEWAY_SECONDS)
        except ExpiredTokenError:
            raise OidcError("The identity provider's answer has expired: try again.", "the ID token expired",
                            400) from None
        except JoseError as exc:
            raise OidcError("The identity provider's answer could not be verified.",
                            f"the ID token was refused: {exc}"[:200], 400) from None
        return dict(claims)

    def provider(self) -> Provider:
        """The provider's metadata, read at most once an hour (and again after a failure)."""
        if self._provider is not None and time.monotonic() - self._read_at < DISCOVERY_SECONDS:
            return self._provider
        issuer = self.settings.issuer
        data = self._get_json(f"{issuer.rstrip('/')}/.well-known/openid-configuration", "its configuration")
        if data.get("issuer") != issuer:
            raise OidcError("The identity provider is not configured as campaignkit expects: ask an admin.",
                            f"discovery names issuer {str(data.get('issuer'))[:100]!r}, not {issuer!r}")
        try:
            endpoints = [check_outbound_url(str(data[key]))
                         for key in ("authorization_endpoint", "token_endpoint", "jwks_uri")]
        except (KeyError, ValueError) as exc:
            raise OidcError("The identity provider is not configured as campaignkit expects: ask an admin.",
                            f"discovery lacks a usable endpoint ({exc})"[:200]) from None
        offered = data.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(alg for alg in offered if alg in ALGORITHMS)
        if not algorithms:
            raise OidcError("The identity provider signs its ID tokens in a way campaignkit does not accept.",
                            f"no accepted ID token algorithm among {offered!r}"[:200])
        methods = tuple(data.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"])
        authorize, token, jwks = endpoints
        self._provider = Provider(issuer, authorize, token, jwks, algorithms, methods)
        self._read_at = time.monotonic()
        return self._provider

    def _exchange(self, provider: Provider, code: str, pending: Pending) -> dict[str, Any]:
        fields = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", self.redirect_uri),
                  ("code_verifier", pending.verifier)]
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        secret = self.settings.client_secret
        if secret is None:
            fields.append(("client_id", self.settings.client_id))  # a public client: PKCE is its proof
        elif "client_secret_basic" in provider.auth_methods or "client_secret_post" not in provider.auth_methods:
            pair = f"{quote(self.settings.client_id, safe='')}:{quote(secret.get_secret_value(), safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            fields += [("client_id", self.settings.client_id), ("client_secret", secret.get_secret_value())]
        try:
            answer = self.http.request("POST", provider.token_endpoint, body=url_encode(fields).encode(),
                                       headers=headers)
        except HttpError as exc:
            error = _error_code(exc.body)
            log.warning("single sign-on: the token endpoint %s refused the code: %s %s",
                        redacted(provider.token_endpoint), exc, error)
            if error == "invalid_grant":
                raise OidcError("The sign-in code was refused (used already, or expired): try again.",
                                "the token endpoint refused the code (invalid_grant)", 400) from None
            raise OidcError("The identity provider could not complete the sign-in: try again later.",
                            f"the token endpoint failed: {exc} {error or ''}".strip()[:200]) from None
        return _json_object(answer.body, "its token response")

    def _decode(self, provider: Provider, id_token: str) -> Any:
        keys = self._keys or self._fetch_keys(provider)
        try:
            return jwt.decode(id_token, keys, algorithms=list(provider.algorithms))
        except (InvalidKeyIdError, BadSignatureError):
            # The provider may have rotated its keys since they were read: read them again, once.
            return jwt.decode(id_token, self._fetch_keys(provider), algorithms=list(provider.algorithms))

    def _fetch_keys(self, provider: Provider) -> KeySet:
        data = self._get_json(provider.jwks_uri, "its signing keys")
        try:
            self._keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OidcError("The identity provider's signing keys could not be read: ask an admin.",
                            f"the JWKS is unusable: {type(exc).__name__}") from None
        return self._keys

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            answer = self.http.request("GET", url, headers={"Accept": "application/json"})
        except HttpError as exc:
            self._provider = None  # read the configuration again next time
            log.warning("single sign-on: could not read %s of the provider: %s", what, exc)
            raise OidcError("The identity provider could not be reached: try again later, or ask an admin.",
                            f"could not read {what}: {exc}"[:200]) from None
        return _json_object(answer.body, what)


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise OidcError("The identity provider gave an answer campaignkit cannot read.", f"{what} is not JSON")
    return data


def _error_code(body: bytes) -> str | None:
    """The OAuth error code of a refusal ({"error": "invalid_grant"}), if the body is one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error[:60] if isinstance(error, str) else None
