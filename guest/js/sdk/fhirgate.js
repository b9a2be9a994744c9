// The gateway's module kit for JavaScript: the host's functions with the
// types a module wants, denials, logging through the host and FHIR helpers.
// A module imports it by a relative path and is built, with it, into one
// component by `componentize-js` (see the README beside this file).
//
// The WIT world (`wit/`) is the contract; this file only makes it pleasant.
// Records arrive and leave with camelCase fields (`tenantId`,
// `providerId`), enums as their names (`'search'`), options as a value or
// `undefined`, `u64` as a BigInt.

import { log as hostLog, config as hostConfig, nowMs as hostNowMs } from 'fhirgate:policy/host@0.1.0';
import { activeProviders as hostActiveProviders } from 'fhirgate:policy/directory@0.1.0';
import { current as currentIssuer } from 'fhirgate:policy/issuer@0.1.0';
import { verify } from 'fhirgate:policy/crypto@0.1.0';

/**
 * A module's refusal: the answer the client receives (a status 400–599, a
 * short kebab-case `code`, a message with no tokens, secrets or patient
 * data). Throw it from a role function; the gateway turns it into the
 * client's error (a 401 with `WWW-Authenticate` for a token validator, an
 * OperationOutcome otherwise).
 */
export class Denial extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'Denial';
    // What the component model lowers as the `err` of a `result`.
    this.payload = { status, code, message };
  }
}

/**
 * The role's interface as the module exports it, each function guarded:
 * a denial thrown goes to the client as the role's denial; anything else
 * thrown (a bug: a `TypeError`, say) is a module fault, and its message and
 * stack are written to stderr first, where the gateway's log and `fhirgate
 * guest test` show them (never the app).
 * `export const routing = guarded({ route(claims, request) { … } });`
 */
export function guarded(role) {
  const out = {};
  for (const [name, fn] of Object.entries(role)) {
    out[name] = (...args) => {
      try {
        return fn.apply(role, args);
      } catch (e) {
        if (!(e instanceof Denial)) {
          const what = e instanceof Error ? `${e.name}: ${e.message}` : `a thrown ${typeof e}: ${String(e)}`;
          console.error(`uncaught exception in ${name}: ${what}${e?.stack ? `\n${e.stack}` : ''}`);
        }
        throw e;
      }
    };
  }
  return out;
}

/** A denial to throw: `throw deny(403, 'unknown-tenant', 'No provider…')`. */
export function deny(status, code, message) {
  return new Denial(status, code, message);
}

/**
 * The module's configuration from the partner's policy, parsed (`{}` when
 * the policy gives none). Unreadable configuration is a `500 module-config`
 * denial.
 */
export function config() {
  const text = hostConfig();
  try {
    const value = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error('not a table');
    }
    return value;
  } catch (e) {
    throw deny(500, 'module-config', `The module configuration is not a JSON object: ${e.message}`);
  }
}

/** The gateway's clock: milliseconds since the Unix epoch, as a Number. */
export function nowMs() {
  return Number(hostNowMs());
}

function write(level, message, fields) {
  const pairs = Object.entries(fields ?? {}).map(([k, v]) => [String(k), String(v)]);
  hostLog(level, String(message), pairs);
}

/**
 * Structured log lines through the gateway, which adds the partner, module,
 * digest and request id. Never log tokens, secrets or patient data.
 * `log.info('routed', { provider: 'st-mary' })`.
 */
export const log = {
  trace: (message, fields) => write('trace', message, fields),
  debug: (message, fields) => write('debug', message, fields),
  info: (message, fields) => write('info', message, fields),
  warn: (message, fields) => write('warn', message, fields),
  error: (message, fields) => write('error', message, fields),
};

/**
 * The providers active for `tenant` in the gateway's directory, in approval
 * order: `[{ id, fhirVersion }]`.
 */
export function activeProviders(tenant) {
  return hostActiveProviders(tenant);
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `s` is a GUID such as `3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13`. */
export function isGuid(s) {
  return typeof s === 'string' && GUID.test(s);
}

/** Whether two tenant ids are the same tenant (GUIDs compare in any case). */
export function sameTenant(a, b) {
  return typeof a === 'string' && typeof b === 'string' && a.toLowerCase() === b.toLowerCase();
}

/**
 * `url` under `fromBase` moved to the same place under `toBase`; `undefined`
 * for a URL not under `fromBase` (which must then not reach the client).
 */
export function rebaseUrl(url, fromBase, toBase) {
  const from = fromBase.replace(/\/+$/, '');
  if (!url.startsWith(from)) return undefined;
  const rest = url.slice(from.length);
  if (!(rest === '' || rest.startsWith('/') || rest.startsWith('?'))) return undefined;
  return toBase.replace(/\/+$/, '') + rest;
}

/** FHIR helpers. */
export const fhir = {
  /** The `fhirVersion` a server of this version declares. */
  versionString(version) {
    return { dstu2: '1.0.2', stu3: '3.0.2', r4: '4.0.1' }[version];
  },

  /** Whether `name` has the shape of a resource type (`Observation`). */
  isResourceType(name) {
    return typeof name === 'string' && /^[A-Z][A-Za-z0-9]*$/.test(name);
  },

  /** An OperationOutcome with one issue (the same shape in DSTU2, STU3, R4). */
  operationOutcome(severity, code, diagnostics) {
    return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
  },

  /**
   * The upstream path of a read or search as the default routers send it:
   * a search (`Type?…` or `Type/_search`) goes to `Type`, a read or vread
   * to its own path; `undefined` for other interactions.
   */
  passThroughPath(request) {
    switch (request.interaction) {
      case 'search':
        return request.resourceType ?? '';
      case 'read':
      case 'vread':
        return request.path;
      default:
        return undefined;
    }
  },
};

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The bytes of unpadded base64url text; `undefined` if it is not that. */
export function base64urlDecode(text) {
  if (typeof text !== 'string' || text.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let n = 0;
  for (const c of text) {
    const digit = BASE64URL.indexOf(c);
    if (digit < 0) return undefined;
    value = ((value << 6) | digit) & 0xffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (value >> bits) & 0xff;
    }
  }
  // The bits left over must be zero: one spelling per byte string.
  if ((value & ((1 << bits) - 1)) !== 0) return undefined;
  return out.subarray(0, n);
}

function json(bytes) {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
}

const ACCEPTED_ALGORITHMS = ['ES256', 'ES384', 'RS256', 'PS256'];

function invalidToken(message) {
  return deny(401, 'invalid_token', message);
}

/**
 * Verification of the gateway's own access tokens: the signature against
 * the key set the gateway publishes (the arithmetic runs in the host),
 * `iss`, `aud`, `exp`/`nbf` with a leeway, and exactly one tenant id in the
 * scope. A validator calls `jwt.validate(token, rules)` first and refuses
 * more on top.
 */
export const jwt = {
  /**
   * The token's claims (`{ clientId, tenantId, scopes, expiresAt, tokenId }`)
   * or a thrown denial (401 `invalid_token`, 403 `insufficient_scope`).
   * `rules`: `{ leeway_seconds = 30, required_scopes = [] }`, usually the
   * `token` table of the module's configuration.
   */
  validate(token, rules = {}) {
    const { leeway, required } = jwt.rules(rules);
    const info = currentIssuer();
    return jwt.check(token, { leeway, required, issuer: info.issuer, audiences: info.audiences, jwks: info.jwks, nowSeconds: Math.floor(nowMs() / 1000) });
  },

  /**
   * `rules` checked (a `500 server_error` denial names what is wrong): a
   * mistake in them must refuse requests, never loosen the checks.
   */
  rules(rules) {
    const bad = (what) => deny(500, 'server_error', `The token rules are invalid: ${what}.`);
    if (rules === null || typeof rules !== 'object' || Array.isArray(rules)) throw bad('expected a table');
    for (const key of Object.keys(rules)) {
      if (key !== 'leeway_seconds' && key !== 'required_scopes') {
        throw bad(`unknown field \`${key}\`, expected \`leeway_seconds\` or \`required_scopes\``);
      }
    }
    const leeway = rules.leeway_seconds ?? 30;
    if (!Number.isSafeInteger(leeway) || leeway < 0) throw bad('`leeway_seconds` must be a whole number of seconds');
    const required = rules.required_scopes ?? [];
    if (!Array.isArray(required) || !required.every((s) => typeof s === 'string')) {
      throw bad('`required_scopes` must be a list of strings');
    }
    return { leeway, required };
  },

  /** `validate` with the issuer's facts and the time given: a pure function. */
  check(token, { leeway, required, issuer, audiences, jwks, nowSeconds }) {
    const parts = typeof token === 'string' ? token.split('.') : [];
    if (parts.length !== 3) throw invalidToken('The access token is malformed.');
    const header = json(base64urlDecode(parts[0]) ?? new Uint8Array());
    const claims = json(base64urlDecode(parts[1]) ?? new Uint8Array());
    const signature = base64urlDecode(parts[2]);
    if (!header || typeof header !== 'object' || !claims || typeof claims !== 'object' || !signature) {
      throw invalidToken('The access token is malformed.');
    }
    if (typeof header.kid !== 'string') throw invalidToken('The access token names no signing key.');
    let keys;
    try {
      keys = JSON.parse(jwks).keys;
    } catch {
      throw deny(500, 'server_error', "The gateway's key set is unreadable.");
    }
    const jwk = Array.isArray(keys) ? keys.find((k) => k && k.kid === header.kid) : undefined;
    if (!jwk) throw invalidToken('The access token was signed by an unknown key.');
    if (!ACCEPTED_ALGORITHMS.includes(header.alg)) {
      throw invalidToken('The access token uses an algorithm that is not accepted.');
    }
    if (jwk.alg !== undefined && jwk.alg !== header.alg) {
      throw invalidToken("The access token's algorithm does not match its key.");
    }
    let key;
    if (jwk.kty === 'EC') {
      const [x, y] = [base64urlDecode(jwk.x), base64urlDecode(jwk.y)];
      if (!x || !y) throw invalidToken('The access token was signed by an unusable key.');
      key = { tag: 'der', val: Uint8Array.from([4, ...x, ...y]) };
    } else if (jwk.kty === 'RSA') {
      const [n, e] = [base64urlDecode(jwk.n), base64urlDecode(jwk.e)];
      if (!n || !e) throw invalidToken('The access token was signed by an unusable key.');
      key = { tag: 'rsa', val: [n, e] };
    } else {
      throw invalidToken('The access token was signed by an unusable key.');
    }
    const message = new TextEncoder().encode(`${parts[0]}.${parts[1]}`);
    if (!verify(header.alg, key, message, signature)) {
      throw invalidToken("The access token's signature is invalid.");
    }
    for (const claim of ['exp', 'iss', 'aud', 'sub']) {
      if (claims[claim] === undefined) throw invalidToken(`The access token lacks the \`${claim}\` claim.`);
    }
    if (claims.iss !== issuer) throw invalidToken('The access token was not issued by this gateway.');
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.some((a) => audiences.includes(a))) throw invalidToken('The access token is not meant for this gateway.');
    const whole = (n) => Number.isSafeInteger(n) && n >= 0;
    const malformed =
      !whole(claims.exp) ||
      typeof claims.sub !== 'string' ||
      (claims.nbf !== undefined && !whole(claims.nbf)) ||
      (claims.jti !== undefined && typeof claims.jti !== 'string') ||
      (claims.scope !== undefined && typeof claims.scope !== 'string');
    if (malformed) throw invalidToken('The access token is malformed.');
    if (claims.exp + leeway <= nowSeconds) throw invalidToken('The access token expired.');
    if (claims.nbf !== undefined && claims.nbf > nowSeconds + leeway) {
      throw invalidToken('The access token is not valid yet.');
    }
    const scopes = (claims.scope ?? '').split(/[ \t\n\f\r]+/).filter((s) => s !== '');
    const tenants = scopes.filter(isGuid);
    if (tenants.length === 0) throw deny(403, 'insufficient_scope', "The access token's scope names no tenant.");
    if (tenants.length > 1) {
      throw deny(403, 'insufficient_scope', "The access token's scope names more than one tenant.");
    }
    const missing = required.find((r) => !scopes.includes(r));
    if (missing !== undefined) throw deny(403, 'insufficient_scope', `The access token lacks the \`${missing}\` scope.`);
    return {
      clientId: claims.sub,
      tenantId: tenants[0].toLowerCase(),
      scopes,
      expiresAt: BigInt(claims.exp),
      tokenId: claims.jti,
    };
  },
};
