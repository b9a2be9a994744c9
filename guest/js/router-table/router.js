// The default table router in JavaScript: maps the token's tenant to a
// provider through a table in the module configuration, or else the first
// provider the gateway's directory has active for the tenant, and forwards
// reads and searches unchanged. It passes the Rust router's cases
// (`guest/router-table/cases`).

import { activeProviders, config, deny, fhir, guarded, sameTenant } from '../sdk/fhirgate.js';

/** `tenants`: tenant id (GUID, any case) → provider id; optional. */
function table() {
  const c = config();
  for (const key of Object.keys(c)) {
    if (key !== 'tenants') {
      throw deny(500, 'module-config', `unknown field \`${key}\`, expected \`tenants\``);
    }
  }
  const tenants = c.tenants ?? {};
  if (typeof tenants !== 'object' || Array.isArray(tenants)) {
    throw deny(500, 'module-config', 'tenants: expected a map of tenant ids to provider ids');
  }
  for (const [tenant, provider] of Object.entries(tenants)) {
    if (typeof provider !== 'string') {
      throw deny(500, 'module-config', `tenants.${tenant}: expected a provider id (a string)`);
    }
  }
  return tenants;
}

export const routing = guarded({
  route(claims, request) {
    const tenants = table();
    const listed = Object.entries(tenants).find(([tenant]) => sameTenant(tenant, claims.tenantId));
    const providerId = listed ? listed[1] : activeProviders(claims.tenantId)[0]?.id;
    if (providerId === undefined) {
      throw deny(403, 'unknown-tenant', "No provider is active for this token's tenant.");
    }
    const path = fhir.passThroughPath(request);
    if (path === undefined) {
      throw deny(405, 'not-supported', 'This interaction is not routed by the table router.');
    }
    return { providerId, path, params: request.params, headers: [] };
  },
});
