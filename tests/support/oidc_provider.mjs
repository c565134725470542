// A real OpenID Connect provider for the single sign-on tests: npm's `oidc-provider`
// (a certified implementation) on 127.0.0.1, with one confidential client and a tiny
// sign-in page of its own (any address signs in; no password: the tests are about the
// relying party, not the provider's login).
//
//   node tests/support/oidc_provider.mjs  (settings from the environment)
//     OIDC_PORT          port on 127.0.0.1
//     OIDC_CLIENT_ID     the client's id        OIDC_CLIENT_SECRET  its secret
//     OIDC_REDIRECT_URI  the client's one redirect URI
//
// It prints "ready <issuer>" once it listens.  Addresses whose local part starts with
// "unverified" get `email_verified: false`.  For the hostile tests, POST /test/tamper
// with a body `aud`, `iss` or `` (off) makes the token endpoint hand out ID tokens whose
// audience or issuer is another one's, still signed with the provider's own key (a token
// meant for someone else), so the client's checks, not the signature, must refuse them.

import { createServer } from 'node:http';
import { createSign, generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const clientId = process.env.OIDC_CLIENT_ID;
const clientSecret = process.env.OIDC_CLIENT_SECRET;
const redirectUri = process.env.OIDC_REDIRECT_URI;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', alg: 'RS256', use: 'sig' };

let tamper = '';

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  scopes: ['openid', 'email'],
  features: { devInteractions: { enabled: false } },
  conformIdTokenClaims: false, // the email claims go into the ID token, as most providers do
  pkce: { required: () => true },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: id, email_verified: !id.startsWith('unverified') };
      },
    };
  },
});

function b64url(value) {
  return Buffer.from(value).toString('base64url');
}

// Re-sign an ID token with one claim changed (the hostile tests' "token for someone else").
function retarget(idToken) {
  const [head, body] = idToken.split('.');
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  if (tamper === 'aud') claims.aud = 'another-client';
  if (tamper === 'iss') claims.iss = 'http://127.0.0.1:1/another-issuer';
  const signingInput = `${head}.${b64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(signingInput).sign(privateKey);
  return `${signingInput}.${signature.toString('base64url')}`;
}

provider.use(async (ctx, next) => {
  await next();
  if (tamper && ctx.path === '/token' && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: retarget(ctx.body.id_token) };
  }
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (chunk) => {
      data += chunk;
      if (data.length > 10000) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test provider</title></head>
<body><main><h1>Test identity provider</h1>
<form method="post" action="/interaction/${escape(details.uid)}">
<label for="email">E-mail address</label> <input id="email" name="email" type="email" required>
<button type="submit">Continue</button></form></main></body></html>`);
    return;
  }
  const email = new URLSearchParams(await readBody(req)).get('email') || '';
  const grant = new provider.Grant({ accountId: email, clientId: details.params.client_id });
  grant.addOIDCScope('openid email');
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId: email }, consent: { grantId } },
    { mergeWithLastSubmission: false });
}

const callback = provider.callback();
const server = createServer(async (req, res) => {
  try {
    if (req.url === '/test/tamper' && req.method === 'POST') {
      tamper = (await readBody(req)).trim();
      res.writeHead(204).end();
    } else if (req.url.startsWith('/interaction/')) {
      await interaction(req, res);
    } else {
      callback(req, res);
    }
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(String(err && err.message));
  }
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
