// A forging OpenID provider for the refusal tests of tests/blackbox/oauth_http_test.cc (issue
// 17): it answers discovery and JWKS like a provider, and its token endpoint returns whatever ID
// token the test asks for, so ledgerd's checks can be shown to refuse each forgery. A real
// provider (ops/oidc) never mints these, which is why a stub is needed at all.
//
//   node oidc_stub.mjs --dir DIR --client-id ID
//
// Serves HTTPS with DIR/cert.pem and DIR/key.pem (the certificate ops/oidc/start made for
// 127.0.0.1, so ledgerd trusts it through the same CA file), on an ephemeral port written to
// DIR/stub-port once listening; exits when DIR disappears.
//
// The code decides the ID token: "<mode>.<nonce>", with mode one of
//   ok           a valid token (the control: shows the stub is otherwise acceptable)
//   wrong-nonce  nonce "forged-nonce"         wrong-aud   aud "another-client"
//   wrong-iss    iss of another provider      expired     exp an hour ago
//   bad-sig      signed by a key not in the JWKS, under the published kid
//   alg-none     {"alg":"none"}, no signature
//   hs256        HMAC-SHA256 keyed with the published RSA modulus (key confusion)
//   rotate       the provider rotates first (a new key, kid "stub-<n>", replaces the published
//                one), then signs a valid token with it
//   unknown-kid  a valid signature under a kid the JWKS does not have
// Each JWKS answer counts in DIR/jwks-count, so a test sees when the relying party refetched.
import { createServer } from 'node:https';
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const arg = (name) => {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`${name} is required`);
  return process.argv[i + 1];
};
const dir = arg('--dir');
const clientId = arg('--client-id');

let key = generateKeyPairSync('rsa', { modulusLength: 2048 });
const evil = generateKeyPairSync('rsa', { modulusLength: 2048 });
let kid = 'stub-1';
let rotations = 1;
let jwksServed = 0;
const publish = () => ({ ...key.publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' });
let jwk = publish();
const b64 = (x) => Buffer.from(x).toString('base64url');

function token(mode, nonce, issuer) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: mode === 'wrong-iss' ? 'https://elsewhere.example' : issuer,
    sub: 'stub-subject-1',
    aud: mode === 'wrong-aud' ? 'another-client' : clientId,
    iat: mode === 'expired' ? now - 3600 : now,
    exp: mode === 'expired' ? now - 3000 : now + 300,
    nonce: mode === 'wrong-nonce' ? 'forged-nonce' : nonce,
    email: 'stub.user@example.test',
    email_verified: true,
  };
  const alg = mode === 'alg-none' ? 'none' : mode === 'hs256' ? 'HS256' : 'RS256';
  if (mode === 'rotate') {
    key = generateKeyPairSync('rsa', { modulusLength: 2048 });
    kid = `stub-${++rotations}`;
    jwk = publish();
  }
  const header = { alg, kid: mode === 'unknown-kid' ? 'stub-unknown' : kid, typ: 'JWT' };
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
  if (alg === 'none') return `${input}.`;
  if (alg === 'HS256') return `${input}.${createHmac('sha256', jwk.n).update(input).digest('base64url')}`;
  const signer = mode === 'bad-sig' ? evil.privateKey : key.privateKey;
  return `${input}.${sign('sha256', Buffer.from(input), signer).toString('base64url')}`;
}

const server = createServer(
  { cert: readFileSync(`${dir}/cert.pem`), key: readFileSync(`${dir}/key.pem`) },
  (req, res) => {
    const issuer = `https://127.0.0.1:${server.address().port}`;
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/.well-known/openid-configuration') {
      return json(200, {
        issuer,
        authorization_endpoint: `${issuer}/auth`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
      });
    }
    if (req.method === 'GET' && req.url === '/jwks') {
      writeFileSync(`${dir}/jwks-count`, String(++jwksServed));
      return json(200, { keys: [jwk] });
    }
    if (req.method === 'POST' && req.url === '/token') {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        const code = new URLSearchParams(body).get('code') || '';
        const dot = code.indexOf('.');
        if (dot < 0) return json(400, { error: 'invalid_grant' });
        json(200, {
          access_token: 'stub-access',
          token_type: 'Bearer',
          id_token: token(code.slice(0, dot), code.slice(dot + 1), issuer),
        });
      });
      return undefined;
    }
    return json(404, { error: 'not_found' });
  });

server.listen(0, '127.0.0.1', () => {
  writeFileSync(`${dir}/stub-port.tmp`, String(server.address().port));
  renameSync(`${dir}/stub-port.tmp`, `${dir}/stub-port`);
});
setInterval(() => { if (!existsSync(dir)) process.exit(0); }, 500).unref();
process.on('SIGTERM', () => process.exit(0));
