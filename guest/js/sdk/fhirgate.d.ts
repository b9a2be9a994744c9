// Types of the module kit and of the WIT records as a JavaScript module sees
// them, for editors and for TypeScript: a `.ts` module compiled to
// JavaScript (`tsc`) is built like any other. With `// @ts-check` at the top
// of a `.js` module, an editor checks it against these too.

export type FhirVersion = 'dstu2' | 'stu3' | 'r4';
export type Interaction = 'read' | 'vread' | 'search' | 'batch' | 'capabilities' | 'other';

export interface Header { name: string; value: string }
export interface Param { name: string; value: string }

/** A client's request, as the gateway worked it out. */
export interface Request {
  requestId: string;
  method: string;
  fhirVersion: FhirVersion;
  interaction: Interaction;
  resourceType?: string;
  resourceId?: string;
  path: string;
  params: Param[];
  headers: Header[];
  body?: Uint8Array;
}

/** What a validator vouches for; what a router decides on. */
export interface Claims {
  clientId: string;
  tenantId: string;
  scopes: string[];
  expiresAt: bigint;
  tokenId?: string;
}

/** A router's answer. */
export interface Target {
  providerId: string;
  path: string;
  params: Param[];
  headers: Header[];
}

/** What a shaper converts between. */
export interface Exchange {
  clientVersion: FhirVersion;
  upstreamVersion: FhirVersion;
  interaction: Interaction;
  gatewayBase: string;
  upstreamBase: string;
}

export interface UpstreamRequest { path: string; params: Param[] }
export interface Shaped { status: number; body: Uint8Array }

/** The three roles' interfaces, as a module exports them. */
export interface Routing { route(claims: Claims, request: Request): Target }
export interface TokenValidation { validate(token: string, request: Request): Claims }
export interface Shaping {
  shapeRequest(exchange: Exchange, request: UpstreamRequest): UpstreamRequest;
  shapeResponse(exchange: Exchange, status: number, body: Uint8Array): Shaped;
}

export class Denial extends Error {
  constructor(status: number, code: string, message: string);
  payload: { status: number; code: string; message: string };
}

export function guarded<T extends object>(role: T): T;
export function deny(status: number, code: string, message: string): Denial;
export function config(): Record<string, any>;
export function nowMs(): number;

type Fields = Record<string, string | number | boolean>;
export const log: {
  trace(message: string, fields?: Fields): void;
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
};

export function activeProviders(tenant: string): { id: string; fhirVersion: FhirVersion }[];
export function isGuid(s: unknown): boolean;
export function sameTenant(a: unknown, b: unknown): boolean;
export function rebaseUrl(url: string, fromBase: string, toBase: string): string | undefined;
export function base64urlDecode(text: string): Uint8Array | undefined;

export interface TokenRules { leeway_seconds?: number; required_scopes?: string[] }
export const jwt: {
  validate(token: string, rules?: TokenRules): Claims;
  check(
    token: string,
    facts: { leeway: number; required: string[]; issuer: string; audiences: string[]; jwks: string; nowSeconds: number },
  ): Claims;
};

export const fhir: {
  versionString(version: FhirVersion): string;
  isResourceType(name: unknown): boolean;
  operationOutcome(severity: string, code: string, diagnostics: string): object;
  passThroughPath(request: Request): string | undefined;
};
