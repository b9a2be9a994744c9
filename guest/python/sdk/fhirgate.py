"""The gateway's module kit for Python: the host's functions with the types
a module wants, denials, logging through the host and FHIR helpers.

A module imports it (``import fhirgate``) and is built, with it, into one
component by ``componentize-py`` (see the README beside this file). The WIT
world (``wit/``) is the contract; the bindings ``componentize-py`` generates
from it (``wit_world``) are what this wraps: records are dataclasses with
snake_case fields (``claims.tenant_id``), enums are ``Enum`` members
(``Interaction.SEARCH``), options are a value or ``None``.
"""

import base64
import binascii
import json
import re

from componentize_py_types import Err
from wit_world.imports import crypto, directory, host, issuer
from wit_world.imports.types import Claims, Denial, Interaction

__all__ = [
    "Denial",
    "Interaction",
    "deny",
    "config",
    "now_ms",
    "log",
    "active_providers",
    "is_guid",
    "same_tenant",
    "is_resource_type",
    "version_string",
    "operation_outcome",
    "pass_through_path",
    "rebase_url",
    "jwt_validate",
    "jwt_rules",
    "jwt_check",
]


def deny(status: int, code: str, message: str) -> Err:
    """A refusal to raise from a role method: ``raise deny(403,
    "unknown-tenant", "No provider…")``. The client receives it (a 401 with
    ``WWW-Authenticate`` for a token validator, an OperationOutcome
    otherwise); the message must hold no tokens, secrets or patient data."""
    return Err(Denial(status=status, code=code, message=message))


def config() -> dict:
    """The module's configuration from the partner's policy, parsed (``{}``
    when the policy gives none). Unreadable configuration raises a ``500
    module-config`` denial."""
    try:
        value = json.loads(host.config())
    except ValueError as e:
        raise deny(500, "module-config", f"The module configuration is not JSON: {e}")
    if not isinstance(value, dict):
        raise deny(500, "module-config", "The module configuration is not a table.")
    return value


def now_ms() -> int:
    """The gateway's clock: milliseconds since the Unix epoch."""
    return host.now_ms()


class _Log:
    """Structured log lines through the gateway, which adds the partner,
    module, digest and request id: ``log.info("routed", provider="a")``.
    Never log tokens, secrets or patient data."""

    @staticmethod
    def _write(level, message, fields):
        host.log(level, str(message), [(str(k), str(v)) for k, v in fields.items()])

    def trace(self, message, **fields):
        self._write(host.LogLevel.TRACE, message, fields)

    def debug(self, message, **fields):
        self._write(host.LogLevel.DEBUG, message, fields)

    def info(self, message, **fields):
        self._write(host.LogLevel.INFO, message, fields)

    def warn(self, message, **fields):
        self._write(host.LogLevel.WARN, message, fields)

    def error(self, message, **fields):
        self._write(host.LogLevel.ERROR, message, fields)


log = _Log()


def active_providers(tenant: str) -> list:
    """The providers active for ``tenant`` in the gateway's directory, in
    approval order (each with ``id`` and ``fhir_version``)."""
    return directory.active_providers(tenant)


_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_guid(s) -> bool:
    """Whether ``s`` is a GUID such as ``3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13``."""
    return isinstance(s, str) and _GUID.fullmatch(s) is not None


def same_tenant(a, b) -> bool:
    """Whether two tenant ids are the same tenant (GUIDs compare in any case)."""
    return isinstance(a, str) and isinstance(b, str) and a.lower() == b.lower()


def is_resource_type(name) -> bool:
    """Whether ``name`` has the shape of a resource type (``Observation``)."""
    return isinstance(name, str) and re.fullmatch(r"[A-Z][A-Za-z0-9]*", name) is not None


def version_string(version) -> str:
    """The ``fhirVersion`` a server of this version declares."""
    return {"DSTU2": "1.0.2", "STU3": "3.0.2", "R4": "4.0.1"}[version.name]


def operation_outcome(severity: str, code: str, diagnostics: str) -> dict:
    """An OperationOutcome with one issue (the same shape in DSTU2, STU3, R4)."""
    return {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]}


def pass_through_path(request):
    """The upstream path of a read or search as the default routers send it:
    a search (``Type?…`` or ``Type/_search``) goes to ``Type``, a read or
    vread to its own path; ``None`` for other interactions."""
    if request.interaction == Interaction.SEARCH:
        return request.resource_type or ""
    if request.interaction in (Interaction.READ, Interaction.VREAD):
        return request.path
    return None


def rebase_url(url: str, from_base: str, to_base: str):
    """``url`` under ``from_base`` moved to the same place under ``to_base``;
    ``None`` for a URL not under ``from_base`` (which must then not reach the
    client)."""
    base = from_base.rstrip("/")
    if not url.startswith(base):
        return None
    rest = url[len(base):]
    if not (rest == "" or rest.startswith("/") or rest.startswith("?")):
        return None
    return to_base.rstrip("/") + rest


def _b64url(text):
    """The bytes of unpadded base64url text in its one canonical spelling
    (the bits left over are zero); ``None`` if it is not that."""
    if not isinstance(text, str) or re.fullmatch(r"[A-Za-z0-9_-]*", text) is None or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode() != text:
        return None
    return data


def _json(data):
    try:
        return json.loads(data.decode("utf-8")) if data is not None else None
    except (UnicodeDecodeError, ValueError):
        return None


_ACCEPTED_ALGORITHMS = ("ES256", "ES384", "RS256", "PS256")


def _invalid(message):
    return deny(401, "invalid_token", message)


def jwt_validate(token: str, rules: dict = None) -> Claims:
    """Verifies one of the gateway's own access tokens: the signature
    against the key set the gateway publishes (the arithmetic runs in the
    host), ``iss``, ``aud``, ``exp``/``nbf`` with a leeway, and exactly one
    tenant id in the scope. The token's claims, or a raised denial (401
    ``invalid_token``, 403 ``insufficient_scope``). ``rules``: ``{
    "leeway_seconds": 30, "required_scopes": [] }``, usually the ``token``
    table of the module's configuration. A validator calls it first and
    refuses more on top."""
    leeway, required = jwt_rules(rules if rules is not None else {})
    info = issuer.current()
    return jwt_check(
        token,
        leeway=leeway,
        required=required,
        issuer_id=info.issuer,
        audiences=info.audiences,
        jwks=info.jwks,
        now_seconds=now_ms() // 1000,
    )


def jwt_rules(rules) -> tuple:
    """``rules`` checked: ``(leeway_seconds, required_scopes)``, or a raised
    ``500 server_error`` denial naming what is wrong (a mistake in them must
    refuse requests, never loosen the checks)."""

    def bad(what):
        return deny(500, "server_error", f"The token rules are invalid: {what}.")

    if not isinstance(rules, dict):
        raise bad("expected a table")
    for key in rules:
        if key not in ("leeway_seconds", "required_scopes"):
            raise bad(f"unknown field `{key}`, expected `leeway_seconds` or `required_scopes`")
    leeway = rules.get("leeway_seconds", 30)
    if not isinstance(leeway, int) or isinstance(leeway, bool) or leeway < 0:
        raise bad("`leeway_seconds` must be a whole number of seconds")
    required = rules.get("required_scopes", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise bad("`required_scopes` must be a list of strings")
    return leeway, required


def jwt_check(token, *, leeway, required, issuer_id, audiences, jwks, now_seconds) -> Claims:
    """``jwt_validate`` with the issuer's facts and the time given."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise _invalid("The access token is malformed.")
    header, claims, signature = _json(_b64url(parts[0])), _json(_b64url(parts[1])), _b64url(parts[2])
    if not isinstance(header, dict) or not isinstance(claims, dict) or signature is None:
        raise _invalid("The access token is malformed.")
    if not isinstance(header.get("kid"), str):
        raise _invalid("The access token names no signing key.")
    try:
        keys = json.loads(jwks)["keys"]
    except (ValueError, KeyError, TypeError):
        raise deny(500, "server_error", "The gateway's key set is unreadable.")
    jwk = next((k for k in keys if isinstance(k, dict) and k.get("kid") == header["kid"]), None)
    if jwk is None:
        raise _invalid("The access token was signed by an unknown key.")
    alg = header.get("alg")
    if alg not in _ACCEPTED_ALGORITHMS:
        raise _invalid("The access token uses an algorithm that is not accepted.")
    if "alg" in jwk and jwk["alg"] != alg:
        raise _invalid("The access token's algorithm does not match its key.")
    if jwk.get("kty") == "EC" and _b64url(jwk.get("x")) and _b64url(jwk.get("y")):
        key = crypto.PublicKey_Der(b"\x04" + _b64url(jwk["x"]) + _b64url(jwk["y"]))
    elif jwk.get("kty") == "RSA" and _b64url(jwk.get("n")) and _b64url(jwk.get("e")):
        key = crypto.PublicKey_Rsa((_b64url(jwk["n"]), _b64url(jwk["e"])))
    else:
        raise _invalid("The access token was signed by an unusable key.")
    if not crypto.verify(alg, key, (parts[0] + "." + parts[1]).encode(), signature):
        raise _invalid("The access token's signature is invalid.")
    for claim in ("exp", "iss", "aud", "sub"):
        if claim not in claims:
            raise _invalid(f"The access token lacks the `{claim}` claim.")
    if claims["iss"] != issuer_id:
        raise _invalid("The access token was not issued by this gateway.")
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if not any(a in audiences for a in aud):
        raise _invalid("The access token is not meant for this gateway.")
    def whole(n):
        return isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**64

    exp, nbf, jti, scope = claims["exp"], claims.get("nbf"), claims.get("jti"), claims.get("scope", "")
    malformed = (
        not whole(exp)
        or not isinstance(claims["sub"], str)
        or (nbf is not None and not whole(nbf))
        or (jti is not None and not isinstance(jti, str))
        or not isinstance(scope, str)
    )
    if malformed:
        raise _invalid("The access token is malformed.")
    if exp + leeway <= now_seconds:
        raise _invalid("The access token expired.")
    if nbf is not None and nbf > now_seconds + leeway:
        raise _invalid("The access token is not valid yet.")
    # ASCII whitespace only, as the gateway splits the scope.
    scopes = [s for s in re.split(r"[ \t\n\f\r]+", scope) if s]
    tenants = [s for s in scopes if is_guid(s)]
    if not tenants:
        raise deny(403, "insufficient_scope", "The access token's scope names no tenant.")
    if len(tenants) > 1:
        raise deny(403, "insufficient_scope", "The access token's scope names more than one tenant.")
    missing = next((r for r in required if r not in scopes), None)
    if missing is not None:
        raise deny(403, "insufficient_scope", f"The access token lacks the `{missing}` scope.")
    return Claims(
        client_id=claims["sub"],
        tenant_id=tenants[0].lower(),
        scopes=scopes,
        expires_at=exp,
        token_id=jti,
    )
