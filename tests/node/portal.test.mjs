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
