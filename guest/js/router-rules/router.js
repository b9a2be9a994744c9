// The example rules router in JavaScript: the default router's tenant →
// provider table, refined by rules that send some resource types to another
// provider and by cutovers that move a tenant to a new provider at a set
// time. It passes the Rust router's cases (`guest/router-rules/cases`) and
// refuses the same configurations with the same messages.

import { config, deny, fhir, guarded, isGuid, nowMs } from '../sdk/fhirgate.js';
import { parseMs } from './rfc3339.js';

/** The key `toml` gives a datetime written unquoted in the policy. */
const TOML_DATETIME_KEY = '$__toml_private_datetime';

function invalid(key, what) {
  return deny(500, 'bad-config', `The routing configuration is invalid at \`${key}\`: ${what}.`);
}

/** Throws unless `value` is an object with only `allowed` keys and every `required` one. */
function fields(key, value, allowed, required) {
  const at = (k) => (key === '' ? k : key);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw key === ''
      ? deny(500, 'bad-config', 'The routing configuration is invalid: expected a table.')
      : invalid(key, 'expected a table');
  }
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) {
      const expected = allowed.map((a) => `\`${a}\``).join(', ');
      throw invalid(at(k), `unknown field \`${k}\`, expected one of ${expected}`);
    }
  }
  for (const k of required) {
    if (!(k in value)) {
      if (key === '') throw deny(500, 'bad-config', `The routing configuration is invalid: missing field \`${k}\`.`);
      throw invalid(key, `missing field \`${k}\``);
    }
  }
}

function list(key, value) {
  if (!Array.isArray(value)) throw invalid(key, 'invalid type, expected a sequence');
  return value;
}

function text(key, value) {
  if (typeof value !== 'string') throw invalid(key, 'invalid type, expected a string');
  return value;
}

function providerId(key, value) {
  text(key, value);
  if (value === '' || /\s/.test(value)) {
    throw invalid(key, `${JSON.stringify(value)} is not a provider id; name a provider declared under the policy's \`[providers]\``);
  }
  return value;
}

function knownTenant(tenants, key, id) {
  text(key, id);
  if (!isGuid(id)) throw invalid(key, `${JSON.stringify(id)} is not a tenant id (a GUID)`);
  const lower = id.toLowerCase();
  if (!tenants.has(lower)) throw invalid(key, 'the tenant has no entry in `tenants`');
  return lower;
}

function timestampMs(key, value) {
  const raw =
    value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 1
      ? value[TOML_DATETIME_KEY]
      : value;
  if (typeof raw !== 'string') {
    throw invalid(key, 'expected an RFC 3339 timestamp such as "2026-12-01T00:00:00Z"');
  }
  try {
    return parseMs(raw);
  } catch (why) {
    throw invalid(key, `${JSON.stringify(raw)} is not an RFC 3339 timestamp: ${why}`);
  }
}

/** The configuration, checked: `{ tenants: Map(lower id → {provider, cutovers}), rules }`. */
export function parseConfig(c) {
  fields('', c, ['tenants', 'rules', 'cutovers'], ['tenants']);
  const tenantTable = c.tenants;
  if (tenantTable === null || typeof tenantTable !== 'object' || Array.isArray(tenantTable)) {
    throw invalid('tenants', 'invalid type, expected a map');
  }
  const tenants = new Map();
  for (const [id, provider] of Object.entries(tenantTable)) {
    const key = `tenants.${id}`;
    if (!isGuid(id)) throw invalid(key, 'a tenant id must be a GUID such as 3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13');
    const entry = { provider: providerId(key, provider), cutovers: [] };
    if (tenants.has(id.toLowerCase())) throw invalid(key, 'another key names the same tenant in a different case');
    tenants.set(id.toLowerCase(), entry);
  }

  const rules = list('rules', c.rules ?? []).map((rule, i) => {
    fields(`rules[${i}]`, rule, ['tenants', 'resource_types', 'provider'], ['resource_types', 'provider']);
    let ruleTenants = null;
    if (rule.tenants !== undefined && rule.tenants !== null) {
      const ids = list(`rules[${i}].tenants`, rule.tenants);
      if (ids.length === 0) {
        throw invalid(`rules[${i}].tenants`, 'the list is empty; leave the key out to match every tenant');
      }
      ruleTenants = ids.map((id, j) => knownTenant(tenants, `rules[${i}].tenants[${j}]`, id));
    }
    const types = list(`rules[${i}].resource_types`, rule.resource_types);
    if (types.length === 0) throw invalid(`rules[${i}].resource_types`, 'the list is empty');
    types.forEach((name, j) => {
      if (!fhir.isResourceType(name)) {
        throw invalid(
          `rules[${i}].resource_types[${j}]`,
          `${JSON.stringify(name)} is not a FHIR resource type name such as "Observation"`,
        );
      }
    });
    return { tenants: ruleTenants, resourceTypes: types, provider: providerId(`rules[${i}].provider`, rule.provider) };
  });

  list('cutovers', c.cutovers ?? []).forEach((cutover, i) => {
    fields(`cutovers[${i}]`, cutover, ['tenant', 'provider', 'at'], ['tenant', 'provider', 'at']);
    const tenantId = knownTenant(tenants, `cutovers[${i}].tenant`, cutover.tenant);
    const provider = providerId(`cutovers[${i}].provider`, cutover.provider);
    const atMs = timestampMs(`cutovers[${i}].at`, cutover.at);
    const tenant = tenants.get(tenantId);
    if (tenant.cutovers.some((c) => c.atMs === atMs)) {
      throw invalid(`cutovers[${i}].at`, 'the tenant already has a cutover at this instant');
    }
    tenant.cutovers.push({ atMs, provider });
  });
  for (const tenant of tenants.values()) tenant.cutovers.sort((a, b) => a.atMs - b.atMs);
  return { tenants, rules };
}

/** The route for `request` made under `claims` at `now` (ms since the epoch). */
export function decide(cfg, claims, request, now) {
  const tenantId = claims.tenantId.toLowerCase();
  const tenant = cfg.tenants.get(tenantId);
  if (tenant === undefined) {
    throw deny(403, 'unknown-tenant', "No provider is configured for this token's tenant.");
  }
  const path = fhir.passThroughPath(request);
  if (path === undefined) throw deny(405, 'not-supported', 'This interaction is not routed by the rules router.');
  const type = request.resourceType;
  const rule =
    type === undefined
      ? undefined
      : cfg.rules.find((r) => (r.tenants === null || r.tenants.includes(tenantId)) && r.resourceTypes.includes(type));
  const passed = tenant.cutovers.filter((c) => c.atMs <= now).at(-1);
  const providerId = rule?.provider ?? passed?.provider ?? tenant.provider;
  return { providerId, path, params: request.params, headers: [] };
}

export const routing = guarded({
  route(claims, request) {
    return decide(parseConfig(config()), claims, request, nowMs());
  },
});
