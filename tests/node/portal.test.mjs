// The portal in a real browser (Debian's Chromium, driven by playwright-core),
// through the pages only: sign-in with a second factor from a TOTP library,
// personal API tokens; a developer registers an app and sees its secrets
// once; an app owner adds, rotates and revokes secrets; an operator registers
// a hospital's test URL naming its approver; the approver reads the live
// check and approves; the app's test client then reads through the gateway;
// an auditor finds that read in the access log and exports it; an operator
// invites someone who accepts through the link. Secrets and approval run
// with JavaScript disabled; times show in the browser's time zone where it
// runs. axe-core finds no serious or critical accessibility violation on any
// page; each page's screenshot is written.
//
// Run by tests/portal.rs, which starts the gateway and makes the users:
//   FHIRGATE_URL, PORTAL_USERS (JSON [{username, password, totp_uri}]),
//   PORTAL_CLIENTS (JSON), SCREENSHOT_DIR
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import * as OTPAuth from 'otpauth';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const base = process.env.FHIRGATE_URL;
const users = JSON.parse(process.env.PORTAL_USERS ?? '[]');
const who = Object.fromEntries(users.map((u) => [u.username, u]));
const clients = JSON.parse(process.env.PORTAL_CLIENTS ?? '{}');
const shots = process.env.SCREENSHOT_DIR;
mkdirSync(shots, { recursive: true });

const profiles = [];
/** Contexts that run no script: axe checks their pages elsewhere. */
const noScript = new WeakSet();
let axeContext;
async function browser({ javaScriptEnabled = true, timezoneId = 'Asia/Kolkata' } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'fhirgate-portal-'));
  profiles.push(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    javaScriptEnabled,
    timezoneId,
    locale: 'en-US',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  // A missing element fails the test in seconds, naming what was awaited.
  context.setDefaultTimeout(15000);
  if (!javaScriptEnabled) noScript.add(context);
  return context;
}

after(async () => {
  await axeContext?.close();
  profiles.forEach((p) => rmSync(p, { recursive: true, force: true }));
});

/** No serious or critical accessibility violation on the page. */
async function accessible(page, name) {
  if (noScript.has(page.context())) {
    // A page without scripts cannot run axe: the same document is checked
    // in a browser that runs them, on the gateway's origin (its stylesheet).
    axeContext ??= await browser();
    const copy = axeContext.pages()[0] ?? await axeContext.newPage();
    await copy.goto(`${base}/portal/sign-in`);
    await copy.setContent(await page.content(), { waitUntil: 'load' });
    page = copy;
  }
  await page.evaluate(axeSource);
  const { violations } = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help}`), [], `${name}: accessibility violations`);
}

/** The user's current code; a code is accepted once, so a second sign-in
 * in the same 30 s step waits for the next one. */
const lastCode = new Map();
async function code(user) {
  const totp = OTPAuth.URI.parse(user.totp_uri);
  let now = totp.generate();
  while (now === lastCode.get(user.username)) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    now = totp.generate();
  }
  lastCode.set(user.username, now);
  return now;
}

async function signIn(page, user, withCode = true) {
  await page.goto(`${base}/portal/sign-in`);
  await page.getByLabel('User name').fill(user.username);
  await page.getByLabel('Password').fill(user.password);
  if (withCode) await page.getByLabel(/Code from your authenticator app/).fill(await code(user));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  if (withCode && new URL(page.url()).pathname === '/portal/sign-in') {
    const alert = await page.getByRole('alert').allInnerTexts();
    throw new Error(`${user.username} was not signed in: ${alert.join(' ')}`);
  }
}

test('sign in with a second factor, make and revoke a token, sign out', async () => {
  const context = await browser();
  try {
    await signInFlow(context, who.olga);
  } finally {
    await context.close();
  }
});

async function signInFlow(context, user) {
  const page = context.pages()[0] ?? await context.newPage();

  const response = await page.goto(`${base}/portal/sign-in`);
  const csp = response.headers()['content-security-policy'];
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /frame-ancestors 'none'/);
  await accessible(page, 'sign-in');
  await page.screenshot({ path: join(shots, 'sign-in.png'), fullPage: true });

  // Without the code an operator is turned away, and told why.
  await signIn(page, user, false);
  await assert.doesNotReject(page.getByRole('alert').waitFor());
  assert.match(await page.getByRole('alert').innerText(), /wrong|second factor/);
  await accessible(page, 'sign-in error');

  await signIn(page, user);
  await page.waitForURL(`${base}/portal/`);
  assert.equal(await page.locator('#who').innerText(), user.username);
  assert.match(await page.locator('#roles').innerText(), /operator/);
  await accessible(page, 'account');
  await page.screenshot({ path: join(shots, 'account.png'), fullPage: true });
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === '__Host-fhirgate-session');
  assert.ok(session && session.httpOnly && session.secure && session.sameSite === 'Strict', 'the session cookie');

  // A form without the session's CSRF token changes nothing, even from a
  // browser that is signed in.
  const forged = await context.request.post(`${base}/portal/tokens`, { form: { label: 'forged', days: '1' } });
  assert.equal(forged.status(), 403);

  // A token, shown once; it works on the admin API; revoked, it does not.
  await page.getByLabel('What the token is for').fill('laptop script');
  await page.getByRole('button', { name: 'Make a token' }).click();
  const token = await page.locator('#new-token').innerText();
  assert.match(token, /^fgu_/);
  await accessible(page, 'new token');
  await page.screenshot({ path: join(shots, 'new-token.png'), fullPage: true });
  const me = await fetch(`${base}/admin/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(me.status, 200);
  await page.goto(`${base}/portal/`);
  assert.equal(await page.locator('#new-token').count(), 0, 'a token is shown once');
  await page.getByRole('button', { name: 'Revoke token laptop script' }).click();
  await page.waitForLoadState();
  assert.match(await page.getByRole('status').innerText(), /revoked/);
  const after = await fetch(`${base}/admin/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(after.status, 401);

  await page.getByRole('button', { name: /Sign out/ }).click();
  await page.waitForLoadState();
  assert.match(await page.getByRole('status').innerText(), /signed out/);
  await page.goto(`${base}/portal/`);
  assert.equal(new URL(page.url()).pathname, '/portal/sign-in', 'signed out, the account page is closed');
}

/** A token request of the app `clientId` with `secret`, for the tenant. */
function tokenRequest(clientId, secret) {
  return fetch(`${base}/oauth2/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: clients.tenant }),
  });
}

/** The HTTP status of a token request. */
async function tokenStatus(clientId, secret) {
  return (await tokenRequest(clientId, secret)).status;
}

/** The app the developer registers: its test client's id and secret. */
const registered = {};
/** The hospital URL the operator registers. */
const hospital = { provider: 'st-mary-test', organization: 'st-mary' };

test('a developer registers an app and sees its secrets once', async () => {
  const context = await browser();
  try {
    const page = context.pages()[0] ?? await context.newPage();
    await signIn(page, who.dana);
    await page.waitForURL(`${base}/portal/`);
    await page.getByRole('link', { name: 'Your apps' }).click();
    await page.waitForURL(`${base}/portal/clients`);
    assert.match(await page.locator('.empty').innerText(), /register your app/);
    await page.getByRole('link', { name: 'Register an app' }).click();
    await page.waitForURL(`${base}/portal/clients/new`);
    await accessible(page, 'register');
    await page.screenshot({ path: join(shots, 'register.png'), fullPage: true });

    // A tenant outside the developer's role is refused, and the form kept.
    await page.getByLabel('App name').fill('Ward rounds');
    await page.getByLabel(/Customer tenant ids/).fill('cdcdcdcd-0000-4000-8000-0000000000cd');
    await page.getByRole('button', { name: 'Register the app' }).click();
    await page.waitForLoadState();
    assert.match(await page.getByRole('alert').innerText(), /does not cover tenant/);
    assert.equal(await page.getByLabel('App name').inputValue(), 'Ward rounds');

    await page.getByLabel(/Customer tenant ids/).fill(clients.tenant);
    await page.getByRole('button', { name: 'Register the app' }).click();
    await page.waitForLoadState();
    registered.test = await page.locator('#test-client-id').innerText();
    registered.testSecret = await page.locator('#test-secret').innerText();
    registered.production = await page.locator('#production-client-id').innerText();
    const productionSecret = await page.locator('#production-secret').innerText();
    assert.notEqual(registered.test, registered.production);
    assert.ok(await page.getByRole('button', { name: 'Copy the test secret' }).isVisible(), 'a copy button');
    await accessible(page, 'registered');
    await page.screenshot({ path: join(shots, 'registered.png'), fullPage: true });
    assert.equal(await tokenStatus(registered.test, registered.testSecret), 200, 'the test secret gets tokens');
    assert.equal(await tokenStatus(registered.production, productionSecret), 200, 'so does the production one');

    // The developer now owns both ids; the secrets are not shown again.
    await page.goto(`${base}/portal/clients`);
    const listed = await page.locator('tbody code').allInnerTexts();
    assert.deepEqual(listed.sort(), [registered.test, registered.production].sort());
    await page.goto(`${base}/portal/clients/${registered.test}`);
    assert.equal(await page.locator('code', { hasText: registered.testSecret }).count(), 0, 'a secret is shown once');

    // The token activity chart counts what just happened; times are in the
    // browser's time zone (India here) with RFC 3339 underneath.
    await tokenStatus(registered.test, 'not-the-secret');
    await page.reload();
    assert.match(await page.locator('figcaption').first().innerText(), /tokens issued: 1, refused: 1/);
    const created = page.locator('tbody time').first();
    assert.match(await created.innerText(), /GMT\+5:30/);
    assert.match(await created.locator('.utc').innerText(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    await accessible(page, 'client activity');
    await page.screenshot({ path: join(shots, 'client-activity.png'), fullPage: true });

    // Public keys for private_key_jwt: private material is refused.
    await page.getByLabel(/JWK Set/).fill('{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cLitgJ1sKJsjJjEjIK-cQ0","kid":"k1"}]}');
    await page.getByRole('button', { name: 'Register the keys' }).click();
    await page.waitForLoadState();
    assert.match(await page.getByRole('status').innerText(), /private key material/);
    await page.getByLabel(/JWK Set/).fill('{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ward-1","alg":"ES256","use":"sig"}]}');
    await page.getByRole('button', { name: 'Register the keys' }).click();
    await page.waitForLoadState();
    assert.match(await page.getByRole('status').innerText(), /registered/);
    assert.equal(await page.locator('td code', { hasText: 'ward-1' }).count(), 1);
  } finally {
    await context.close();
  }
});

test('an app owner adds a secret, sees it once, and revokes it (no JavaScript)', async () => {
  const context = await browser({ javaScriptEnabled: false });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    await signIn(page, who.ada);
    await page.waitForURL(`${base}/portal/`);
    await page.getByRole('link', { name: 'Your apps' }).click();
    await page.waitForURL(`${base}/portal/clients`);
    const listed = await page.locator('tbody code').allInnerTexts();
    assert.deepEqual(listed.sort(), [clients.owned, clients.owned_test].sort(), 'both ids of the registration, nothing else');
    await accessible(page, 'clients');
    await page.screenshot({ path: join(shots, 'clients.png'), fullPage: true });

    await page.goto(`${base}/portal/clients/${clients.owned}`);
    await accessible(page, 'client');
    await page.getByLabel('What the secret is for').fill('ward tablets');
    await page.getByLabel(/Days until it stops working/).fill('30');
    await page.getByRole('button', { name: 'Add a secret' }).click();
    await page.waitForLoadState();
    const secret = await page.locator('#new-secret').innerText();
    await accessible(page, 'new secret');
    await page.screenshot({ path: join(shots, 'client-secret.png'), fullPage: true });
    assert.equal(await tokenStatus(clients.owned, secret), 200, 'the new secret gets tokens');
    await page.goto(`${base}/portal/clients/${clients.owned}`);
    assert.equal(await page.locator('#new-secret').count(), 0, 'a secret is shown once');

    await page.getByRole('button', { name: 'Revoke secret ward tablets' }).click();
    await page.waitForLoadState();
    assert.match(await page.getByRole('status').innerText(), /revoked/);
    assert.equal(await tokenStatus(clients.owned, secret), 401, 'a revoked secret gets nothing');

    // Rotation with no grace: a new secret works, every older one stops.
    await page.getByLabel(/Grace period in hours/).fill('0');
    await page.getByRole('button', { name: 'Rotate the secret' }).click();
    await page.waitForLoadState();
    const rotated = await page.locator('#new-secret').innerText();
    assert.equal(await tokenStatus(clients.owned, rotated), 200, 'the rotated secret gets tokens');
    assert.match(await page.getByRole('status').innerText(), /stop working/);

    const elsewhere = await page.goto(`${base}/portal/clients/${clients.other}`);
    assert.equal(elsewhere.status(), 403, "someone else's client stays closed");
  } finally {
    await context.close();
  }
});

test('an operator registers a hospital test URL and names its approver', async () => {
  const context = await browser();
  try {
    const page = context.pages()[0] ?? await context.newPage();
    await signIn(page, who.nina);
    await page.waitForURL(`${base}/portal/`);
    await page.getByRole('link', { name: 'Tenants and hospitals' }).click();
    await page.waitForURL(`${base}/portal/tenants`);
    assert.match(await page.locator('.empty').innerText(), /No hospital URL/);
    await accessible(page, 'tenants (empty)');

    const fill = async (approver) => {
      await page.getByLabel(/Customer tenant id/).fill(clients.tenant);
      await page.getByLabel(/Organization id/).fill(hospital.organization);
      await page.getByLabel(/Organization name/).fill("St Mary's Hospital");
      await page.getByLabel(/Provider id/).fill(hospital.provider);
      await page.getByLabel('FHIR base URL').fill(clients.provider_base);
      await page.getByLabel('FHIR version it speaks').selectOption('r4');
      await page.getByLabel('Environment').selectOption('test');
      await page.getByLabel(/Approver/).fill(approver);
      await page.getByRole('button', { name: 'Request approval' }).click();
      await page.waitForLoadState();
    };
    // Naming oneself is refused with the reason, and the form kept.
    await fill('nina');
    assert.match(await page.getByRole('alert').innerText(), /someone other than the requester/);
    assert.equal(await page.getByLabel('FHIR base URL').inputValue(), clients.provider_base);
    await accessible(page, 'tenants (error)');

    await fill('bea');
    assert.match(await page.getByRole('status').innerText(), /waits for bea/);
    // The same provider id for another server is refused: changing a
    // provider would send the tenants it serves back to approval.
    const elsewhere = clients.provider_base.replace('/fhir', '/other');
    await page.getByLabel(/Customer tenant id/).fill('efefefef-0000-4000-8000-0000000000ef');
    await page.getByLabel(/Provider id/).fill(hospital.provider);
    await page.getByLabel('FHIR base URL').fill(elsewhere);
    await page.getByLabel(/Approver/).fill('bea');
    await page.getByRole('button', { name: 'Request approval' }).click();
    await page.waitForLoadState();
    assert.match(await page.getByRole('alert').innerText(), /already exists/);
    const row = page.locator('tbody tr', { hasText: hospital.provider });
    assert.match(await row.innerText(), /pending/);
    assert.match(await row.innerText(), /test/);
    await accessible(page, 'tenants');
    await page.screenshot({ path: join(shots, 'tenants.png'), fullPage: true });
  } finally {
    await context.close();
  }
});

test('the approver reads the check, approves, and the app then reaches the hospital (no JavaScript)', async () => {
  const context = await browser({ javaScriptEnabled: false });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    await signIn(page, who.bea);
    await page.waitForURL(`${base}/portal/`);
    await page.getByRole('link', { name: 'Approvals' }).click();
    await page.waitForURL(`${base}/portal/approvals`);
    await accessible(page, 'approvals');
    await page.getByRole('link', { name: hospital.provider }).click();
    await page.waitForLoadState();
    assert.equal(await page.locator('#state').innerText(), 'pending');
    // Before approval nothing reaches the hospital for this tenant.
    const token = await appToken();
    assert.equal((await read(token)).status, 403);

    await page.getByRole('button', { name: 'Run the provider check' }).click();
    await page.waitForLoadState();
    assert.equal(await page.locator('#check-result').innerText(), 'passed');
    await accessible(page, 'approval with report');
    await page.screenshot({ path: join(shots, 'approval.png'), fullPage: true });

    await page.getByLabel(/Note or reason/).fill('St Mary test EHR answers');
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.waitForLoadState();
    assert.equal(await page.locator('#state').innerText(), 'active');
    await page.locator('#integration-link').click();
    await page.waitForLoadState();
    assert.equal(await page.locator('#token-url').innerText(), `${base}/oauth2/token`);
    await accessible(page, 'integration record');
    await page.screenshot({ path: join(shots, 'integration.png'), fullPage: true });

    // The app's test client now reaches the approved test URL through the
    // gateway; a production client of the same tenant does not.
    const resp = await read(token);
    assert.equal(resp.status, 200);
    assert.equal((await resp.json()).resourceType, 'Patient');
    assert.equal((await read(await productionToken())).status, 403, 'a test URL serves test clients only');
  } finally {
    await context.close();
  }
});

/** A token of the registered app's test client. */
async function appToken() {
  const resp = await tokenRequest(registered.test, registered.testSecret);
  assert.equal(resp.status, 200);
  return (await resp.json()).access_token;
}

/** A token of another app's production client of the tenant. */
async function productionToken() {
  const resp = await tokenRequest(clients.other, clients.other_secret);
  assert.equal(resp.status, 200);
  return (await resp.json()).access_token;
}

function read(token) {
  return fetch(`${base}/stu3/Patient/pat-001`, { headers: { authorization: `Bearer ${token}` } });
}

test('an auditor finds that access in the log and exports it', async () => {
  const context = await browser();
  try {
    const page = context.pages()[0] ?? await context.newPage();
    await signIn(page, who.aude);
    await page.waitForURL(`${base}/portal/`);
    const closed = await page.goto(`${base}/portal/tenants`);
    assert.equal(closed.status(), 403, "the operators' pages stay closed");
    assert.match(await page.locator('main').innerText(), /for the gateway's operators/);
    await accessible(page, 'forbidden');
    await page.goto(`${base}/portal/`);
    await page.getByRole('link', { name: 'Access log' }).click();
    await page.waitForURL(`${base}/portal/access`);

    // A bad time is explained, not guessed at.
    await page.getByLabel(/^From/).fill('yesterday');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForLoadState();
    assert.match(await page.getByRole('alert').innerText(), /RFC 3339/);
    await page.getByLabel(/^From/).fill('');

    await page.getByLabel('Client id').fill(registered.test);
    await page.getByLabel('Patient id').fill('pat-001');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForLoadState();
    const rows = page.locator('#records tbody tr');
    const texts = await rows.allInnerTexts();
    assert.ok(texts.some((t) => t.includes(hospital.provider) && t.includes('200')), `the read is listed: ${texts}`);
    assert.match(await rows.first().locator('time').innerText(), /GMT\+5:30/);
    await accessible(page, 'access log');
    await page.screenshot({ path: join(shots, 'access-log.png'), fullPage: true });

    const href = await page.getByRole('link', { name: /Export this search/ }).getAttribute('href');
    const exported = await context.request.get(`${base}${href}`);
    assert.equal(exported.status(), 200);
    assert.match(exported.headers()['content-disposition'], /attachment/);
    const bundle = await exported.json();
    assert.equal(bundle.resourceType, 'Bundle');
    assert.equal(bundle.entry.length, texts.length);
    assert.ok(bundle.entry.every((e) => e.resource.resourceType === 'AuditEvent'));
    assert.ok(JSON.stringify(bundle).includes(registered.test), 'the AuditEvents name the client');

    await page.getByLabel('Client id').fill('no-such-client');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForLoadState();
    assert.match(await page.getByRole('status').innerText(), /Nothing matches/);
  } finally {
    await context.close();
  }
});

test('an operator reads the health charts, uploads a module and rolls it back', async () => {
  const context = await browser();
  try {
    const page = context.pages()[0] ?? await context.newPage();
    await signIn(page, who.nina);
    await page.waitForURL(`${base}/portal/`);
    await page.getByRole('link', { name: 'Health' }).click();
    await page.waitForURL(`${base}/portal/health`);
    const requests = await page.locator('figcaption').first().innerText();
    const served = Number(/requests: (\d+)/.exec(requests)?.[1]);
    assert.ok(served >= 2, `the reads above are counted: ${requests}`);
    assert.match(await page.locator('#breakers').innerText(), new RegExp(`${hospital.provider}[\\s\\S]*closed`));
    await accessible(page, 'health');
    await page.screenshot({ path: join(shots, 'health.png'), fullPage: true });

    await page.goto(`${base}/portal/modules`);
    const active = await page.locator('#active-modules').innerText();
    for (const role of ['token-validation', 'routing', 'shaping']) assert.match(active, new RegExp(role));
    await accessible(page, 'modules');

    // Something that is not a module is refused with the reason; the
    // active modules keep serving.
    await page.getByLabel('Role').selectOption('routing');
    await page.getByLabel('Module (.wasm)').setInputFiles({
      name: 'broken.wasm', mimeType: 'application/wasm', buffer: Buffer.from('not a module'),
    });
    await page.getByRole('button', { name: 'Upload and activate' }).click();
    await page.waitForLoadState();
    assert.match(await page.getByRole('alert').innerText(), /Not activated|not a|invalid|module/i);
    assert.equal(await page.locator('#active-modules').innerText(), active);
    assert.equal((await read(await appToken())).status, 200, 'the app still reads');

    // A module that passes its checks serves; rolling back restores the one before.
    await page.getByLabel('Role').selectOption('routing');
    await page.getByLabel(/^Name/).fill('table-router-again');
    await page.getByLabel('Module (.wasm)').setInputFiles(process.env.PORTAL_MODULE);
    await page.getByRole('button', { name: 'Upload and activate' }).click();
    await page.waitForLoadState();
    assert.match(await page.getByRole('status').innerText(), /is active as the routing module/);
    assert.match(await page.locator('#active-modules').innerText(), /table-router-again/);
    await page.screenshot({ path: join(shots, 'modules.png'), fullPage: true });
    await page.getByRole('button', { name: 'Roll back to these' }).click();
    await page.waitForLoadState();
    assert.match(await page.getByRole('status').innerText(), /Rolled back/);
    assert.doesNotMatch(await page.locator('#active-modules').innerText(), /table-router-again/);
    assert.equal((await read(await appToken())).status, 200, 'the app reads after the rollback');
    // And forward again, explicitly: the uploaded module serves once more.
    assert.match(await page.locator('#next-modules').innerText(), /table-router-again/);
    await page.getByRole('button', { name: 'Step forward to these' }).click();
    await page.waitForLoadState();
    assert.match(await page.getByRole('status').innerText(), /Stepped forward/);
    assert.match(await page.locator('#active-modules').innerText(), /table-router-again/);
    assert.equal(await page.getByRole('button', { name: 'Step forward to these' }).count(), 0);
    await accessible(page, 'modules after a step forward');
    assert.equal((await read(await appToken())).status, 200, 'the app reads after the step forward');
  } finally {
    await context.close();
  }
});

test('an operator invites someone, who accepts through the link and signs in', async () => {
  const context = await browser();
  const invitee = await browser();
  try {
    const page = context.pages()[0] ?? await context.newPage();
    await signIn(page, who.olga);
    await page.waitForURL(`${base}/portal/`);
    await page.getByRole('link', { name: 'People' }).click();
    await page.waitForURL(`${base}/portal/users`);
    await page.getByLabel('User name', { exact: true }).last().fill('ike');
    await page.getByLabel('Role', { exact: true }).fill('auditor');
    await page.getByRole('button', { name: 'Invite' }).click();
    await page.waitForLoadState();
    const link = await page.locator('#invitation-link').innerText();
    assert.ok(link.startsWith(`${base}/portal/invitation/fgi_`), link);
    assert.match(await page.locator('tbody', { hasText: 'ike' }).last().innerText(), /auditor/);
    await accessible(page, 'users');
    await page.screenshot({ path: join(shots, 'users.png'), fullPage: true });

    const other = invitee.pages()[0] ?? await invitee.newPage();
    await other.goto(link);
    assert.match(await other.locator('h1').innerText(), /ike/);
    await accessible(other, 'invitation');
    await other.screenshot({ path: join(shots, 'invitation.png'), fullPage: true });
    await other.getByLabel('Choose a password').fill('ike has a long pass phrase');
    await other.getByLabel('The same password again').fill('ike has a long pass phrase!');
    await other.getByRole('button', { name: 'Accept the invitation' }).click();
    await other.waitForLoadState();
    assert.match(await other.getByRole('alert').innerText(), /differ/);
    await other.getByLabel('Choose a password').fill('ike has a long pass phrase');
    await other.getByLabel('The same password again').fill('ike has a long pass phrase');
    await other.getByRole('button', { name: 'Accept the invitation' }).click();
    await other.waitForLoadState();
    const ike = { username: 'ike', password: 'ike has a long pass phrase', totp_uri: await other.locator('#totp-uri').innerText() };
    await accessible(other, 'invitation accepted');
    await signIn(other, ike);
    await other.waitForURL(`${base}/portal/`);
    assert.equal(await other.locator('#who').innerText(), 'ike');
    const again = await other.goto(link);
    assert.equal(again.status(), 404, 'an invitation works once');
  } finally {
    await invitee.close();
    await context.close();
  }
});

test('signing in works with JavaScript disabled', async () => {
  const context = await browser({ javaScriptEnabled: false });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    const user = who.nina;
    await signIn(page, user);
    await page.waitForURL(`${base}/portal/`);
    assert.equal(await page.locator('#who').innerText(), user.username);
  } finally {
    await context.close();
  }
});

test('a form posted from elsewhere signs nobody in', async () => {
  const user = who.nina;
  const form = new URLSearchParams({ username: user.username, password: user.password, code: '000000', form_token: 'x' });
  const resp = await fetch(`${base}/portal/sign-in`, { method: 'POST', body: form, redirect: 'manual' });
  assert.equal(resp.status, 401);
  assert.equal(resp.headers.get('set-cookie')?.includes('__Host-fhirgate-session=') ?? false, false);
});
