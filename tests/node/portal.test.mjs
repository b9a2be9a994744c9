// The portal in a real browser (Debian's Chromium, driven by playwright-core):
// sign-in with a second factor from a TOTP library, the account page, a
// personal API token shown once and revoked, sign-out; the same sign-in with
// JavaScript disabled; axe-core finds no serious or critical accessibility
// violation on any page; each page's screenshot is written.
//
// Run by tests/portal.rs, which starts the gateway and makes the users:
//   FHIRGATE_URL, PORTAL_USERS (JSON [{username, password, totp_uri}]), SCREENSHOT_DIR
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
const clients = JSON.parse(process.env.PORTAL_CLIENTS ?? '{}');
const shots = process.env.SCREENSHOT_DIR;
mkdirSync(shots, { recursive: true });

const profiles = [];
async function browser({ javaScriptEnabled = true } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'fhirgate-portal-'));
  profiles.push(profile);
  return chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    javaScriptEnabled,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

after(() => profiles.forEach((p) => rmSync(p, { recursive: true, force: true })));

/** No serious or critical accessibility violation on the page. */
async function accessible(page, name) {
  await page.evaluate(axeSource);
  const { violations } = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help}`), [], `${name}: accessibility violations`);
}

function code(user) {
  return OTPAuth.URI.parse(user.totp_uri).generate();
}

async function signIn(page, user, withCode = true) {
  await page.goto(`${base}/portal/sign-in`);
  await page.getByLabel('User name').fill(user.username);
  await page.getByLabel('Password').fill(user.password);
  if (withCode) await page.getByLabel(/Code from your authenticator app/).fill(code(user));
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('sign in with a second factor, make and revoke a token, sign out', async () => {
  const context = await browser();
  try {
    await signInFlow(context, users[0]);
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

test('an app owner adds a secret, sees it once, and revokes it', async () => {
  const context = await browser();
  try {
    const page = context.pages()[0] ?? await context.newPage();
    await signIn(page, users[2]);
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

test('the approver reads the check, approves, and the app then reaches the hospital', async () => {
  const context = await browser();
  try {
    const page = context.pages()[0] ?? await context.newPage();
    await signIn(page, users[3]);
    await page.waitForURL(`${base}/portal/`);
    await page.getByRole('link', { name: 'Approvals' }).click();
    await page.waitForURL(`${base}/portal/approvals`);
    await accessible(page, 'approvals');
    await page.getByRole('link', { name: clients.provider }).click();
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

    // The app's token now reaches the approved hospital through the gateway.
    const resp = await read(token);
    assert.equal(resp.status, 200);
    assert.equal((await resp.json()).resourceType, 'Patient');
  } finally {
    await context.close();
  }
});

/** A token of the tenant's other app (the owned one's secrets were rotated away above). */
async function appToken() {
  const resp = await tokenRequest(clients.other, clients.other_secret);
  assert.equal(resp.status, 200);
  return (await resp.json()).access_token;
}

function read(token) {
  return fetch(`${base}/stu3/Patient/pat-001`, { headers: { authorization: `Bearer ${token}` } });
}

test('signing in works with JavaScript disabled', async () => {
  const context = await browser({ javaScriptEnabled: false });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    const user = users[1];
    await signIn(page, user);
    await page.waitForURL(`${base}/portal/`);
    assert.equal(await page.locator('#who').innerText(), user.username);
  } finally {
    await context.close();
  }
});

test('a form posted from elsewhere signs nobody in', async () => {
  const user = users[1];
  const form = new URLSearchParams({ username: user.username, password: user.password, code: '000000', form_token: 'x' });
  const resp = await fetch(`${base}/portal/sign-in`, { method: 'POST', body: form, redirect: 'manual' });
  assert.equal(resp.status, 401);
  assert.equal(resp.headers.get('set-cookie')?.includes('__Host-fhirgate-session=') ?? false, false);
});
