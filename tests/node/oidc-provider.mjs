// A real OpenID provider (panva's oidc-provider) on 127.0.0.1, port 0, for the Rust tests.
//
// Usage: node oidc-provider.mjs '<json config>'
//   config: { clients: [{ client_id, client_secret, redirect_uris: [...] }] }
// Prints one JSON line when listening: { issuer, jwks_uri, token_endpoint, kid }.
//
// Test users (log in with any password through the provider's own login and consent forms):
//   alice (alice@example.com), bob (bob@example.org), carol (carol@example.net).
// Client-credentials grants with `resource=<uri>` return JWT access tokens for audience <uri>,
// signed with the provider's RS256 key: real tokens for jwt-validation tests.
// POST /test/sign with a JSON payload signs it with that same key (kid included), for tokens
// the grant cannot produce (already expired, not yet valid).
// PUT /test/accounts/<id> with a JSON object replaces (or adds) that account's claims;
// DELETE /test/accounts/<id> removes the account (its tokens are then refused at userinfo),
// as a directory would when a user changes their email or leaves.
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const config = JSON.parse(process.argv[2] || '{}');
const KID = 'sluice-test-rs256';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: KID, use: 'sig', alg: 'RS256' };

const ACCOUNTS = {
  alice: { sub: 'alice', email: 'alice@example.com', email_verified: true, name: 'Alice Example' },
  bob: { sub: 'bob', email: 'bob@example.org', email_verified: true, name: 'Bob Other' },
  carol: { sub: 'carol', email: 'carol@example.net', email_verified: true, name: 'Carol Third' },
};

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: (config.clients || []).map((c) => ({
    grant_types: ['authorization_code', 'client_credentials', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  jwks: { keys: [signingJwk] },
  cookies: { keys: ['sluice-test-cookie-key'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'api'],
  async findAccount(_ctx, id) {
    const claims = ACCOUNTS[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return claims; } };
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      getResourceServerInfo: (_ctx, resource) => ({
        scope: 'api',
        audience: resource,
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  pkce: { required: () => true },
  ttl: { Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, IdToken: 600 },
});

async function sign(req, res) {
  let body = '';
  for await (const chunk of req) body += chunk;
  const payload = JSON.parse(body || '{}');
  const token = await new jose.CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'RS256', kid: KID, typ: 'JWT' })
    .sign(privateKey);
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(token);
}

async function account(req, res, id) {
  if (req.method === 'DELETE') {
    delete ACCOUNTS[id];
  } else {
    let body = '';
    for await (const chunk of req) body += chunk;
    ACCOUNTS[id] = { ...JSON.parse(body || '{}'), sub: id };
  }
  res.writeHead(204);
  res.end();
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const fail = (e) => { res.writeHead(500); res.end(String(e)); };
  if (req.method === 'POST' && req.url === '/test/sign') {
    sign(req, res).catch(fail);
    return;
  }
  const accountId = req.url.match(/^\/test\/accounts\/([a-z]+)$/)?.[1];
  if (accountId && (req.method === 'PUT' || req.method === 'DELETE')) {
    account(req, res, accountId).catch(fail);
    return;
  }
  callback(req, res);
});

process.stdout.write(`${JSON.stringify({
  issuer,
  jwks_uri: `${issuer}/jwks`,
  token_endpoint: `${issuer}/token`,
  kid: KID,
})}\n`);

// Exit with the test that started us (stdin closes when it drops the child).
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
