"""The default table router in Python: maps the token's tenant to a provider
through a table in the module configuration, or else the first provider the
gateway's directory has active for the tenant, and forwards reads and
searches unchanged. It passes the Rust router's cases
(``guest/router-table/cases``)."""

from wit_world import exports
from wit_world.exports.routing import Target

import fhirgate


def table() -> dict:
    """``tenants``: tenant id (GUID, any case) → provider id; optional."""
    c = fhirgate.config()
    for key in c:
        if key != "tenants":
            raise fhirgate.deny(500, "module-config", f"unknown field `{key}`, expected `tenants`")
    tenants = c.get("tenants", {})
    if not isinstance(tenants, dict):
        raise fhirgate.deny(500, "module-config", "tenants: expected a map of tenant ids to provider ids")
    for tenant, provider in tenants.items():
        if not isinstance(provider, str):
            raise fhirgate.deny(500, "module-config", f"tenants.{tenant}: expected a provider id (a string)")
    return tenants


class Routing(exports.Routing):
    def route(self, claims, request) -> Target:
        tenants = table()
        provider = next((p for t, p in tenants.items() if fhirgate.same_tenant(t, claims.tenant_id)), None)
        if provider is None:
            active = fhirgate.active_providers(claims.tenant_id)
            provider = active[0].id if active else None
        if provider is None:
            raise fhirgate.deny(403, "unknown-tenant", "No provider is active for this token's tenant.")
        path = fhirgate.pass_through_path(request)
        if path is None:
            raise fhirgate.deny(405, "not-supported", "This interaction is not routed by the table router.")
        return Target(provider_id=provider, path=path, params=request.params, headers=[])
