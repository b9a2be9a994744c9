// An OpenID Connect provider for the end-to-end tests, built on the
// `oidc-provider` package: one confidential client, PKCE required, and an
// interaction that signs in at once the account named in ACCOUNT_FILE, read
// at each sign-in (the test plays the browser and chooses who signs in; the
// provider's login page is not under test).
//
//   node oidc_provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI ACCOUNT_FILE
//
// Prints {"event":"ready","issuer":…} on stdout once listening.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri, accountFile] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  findAccount: async (ctx, id) => ({
    accountId: id,
    // An e-mail that is the same for everyone: the gateway must not care.
    claims: async () => ({ sub: id, email: 'shared@example.org', email_verified: true }),
  }),
});

const handle = provider.callback();
http.createServer(async (req, res) => {
  const interaction = req.url.match(/^\/interaction\/([^/?]+)/);
  if (!interaction) {
    handle(req, res);
    return;
  }
  try {
    const account = readFileSync(accountFile, 'utf8').trim();
    const details = await provider.interactionDetails(req, res);
    const grant = new provider.Grant({ accountId: account, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, {
      login: { accountId: account },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
  } catch (e) {
    res.statusCode = 500;
    res.end(String(e));
  }
}).listen(Number(port), '127.0.0.1', () => {
  console.log(JSON.stringify({ event: 'ready', issuer }));
});
