"""Drives the gateway's token endpoint with authlib, as an app would, with
both client authentication methods, and verifies every token with PyJWT
against the published JWK Set. Prints one JSON line; exits non-zero on any
failure.

usage: oauth_interop.py TOKEN_URL JWKS_URL CLIENT_ID CLIENT_SECRET TENANT ISSUER AUDIENCE FHIR_URL
"""

import json
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session


def main():
    token_url, jwks_url, client_id, secret, tenant, issuer, audience, fhir_url = sys.argv[1:9]
    jwks = jwt.PyJWKClient(jwks_url)
    results = {}
    for method in ("client_secret_basic", "client_secret_post"):
        session = OAuth2Session(client_id, secret, scope=tenant, token_endpoint_auth_method=method)
        token = session.fetch_token(token_url, grant_type="client_credentials")
        assert token["token_type"].lower() == "bearer", token
        assert int(token["expires_in"]) > 0, token
        access = token["access_token"]
        key = jwks.get_signing_key_from_jwt(access)
        claims = jwt.decode(
            access,
            key.key,
            algorithms=["ES256", "RS256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
        )
        assert tenant in claims["scope"].split(), claims
        assert claims["sub"] == client_id, claims
        # The session sends the token as a Bearer header on FHIR calls.
        resp = session.get(fhir_url)
        assert resp.status_code == 200, resp.text
        results[method] = {"kid": key.key_id, "scope": claims["scope"], "fhir_status": resp.status_code}

    # A wrong secret is refused with invalid_client.
    bad = requests.post(
        token_url,
        data={"grant_type": "client_credentials", "scope": tenant},
        auth=(client_id, "wrong-" + secret),
        timeout=30,
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client", bad.text
    results["wrong_secret"] = bad.json()["error"]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
