// A real OpenID Provider for tests: node_modules oidc-provider (panva, OpenID Certified) behind
// node:https. ops/oidc/start runs it; see ops/oidc/README.md.
//
//   node provider.mjs --dir DIR --config DIR/config.json --modules PKG_DIR
//
// DIR must hold cert.pem and key.pem (ops/oidc/start makes them). Once listening on 127.0.0.1 it
// writes DIR/pid, DIR/port and last DIR/issuer (https://ISSUER_HOST:PORT), each atomically.
// SIGTERM or SIGINT stop it, and so does DIR disappearing (checked every second), so a test that
// died before stopping it leaves nothing running once its temporary directory is gone.
//
// What it configures (see README.md for why):
//  - clients and accounts from the JSON config; two signing keys made at start (RS256 RSA-2048
//    and ES256 P-256, kid = RFC 7638 thumbprint), both in the JWKS;
//  - response_type code only, PKCE required for every client (oidc-provider 9 knows only S256);
//  - scopes openid email profile; claims email, email_verified, name; conformIdTokenClaims off,
//    so the ID token itself carries the claims of the scopes granted;
//  - its own small interactions instead of devInteractions: a login form whose `login` field
//    selects the account (any password), consent granted automatically, an abort link.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string' },
    config: { type: 'string' },
    modules: { type: 'string' },
  },
});
for (const name of ['dir', 'config', 'modules']) {
  if (!args[name]) {
    console.error(`provider.mjs: --${name} is required`);
    process.exit(2);
  }
}
const dir = path.resolve(args.dir);
const log = (...a) => console.log(new Date().toISOString(), ...a);
const die = (msg) => {
  console.error(`provider.mjs: error: ${msg}`);
  process.exit(1);
};

// oidc-provider lives outside the source tree (ops/oidc/lib.sh, oidc_install); its own imports
// (jose, koa, ...) resolve from there.
const { default: Provider } = await import(
  pathToFileURL(path.join(args.modules, 'node_modules', 'oidc-provider', 'lib', 'index.js')).href
);

// ---- configuration -------------------------------------------------------------------------
let cfg;
try {
  cfg = JSON.parse(fs.readFileSync(args.config, 'utf8'));
} catch (e) {
  die(`cannot read the config ${args.config}: ${e.message}`);
}
const port = cfg.port ?? 0;
const issuerHost = cfg.issuerHost ?? '127.0.0.1';
const idTokenTtl = cfg.idTokenTtl ?? 3600;
if (!Number.isInteger(port) || port < 0 || port > 65535) die('"port" must be 0..65535');
if (!Number.isInteger(idTokenTtl) || idTokenTtl < 1) die('"idTokenTtl" must be seconds > 0');
if (!Array.isArray(cfg.clients) || cfg.clients.length === 0) die('"clients" must be a non-empty array');
if (!Array.isArray(cfg.accounts)) die('"accounts" must be an array');

const clients = cfg.clients.map((c, i) => {
  if (!c.client_id || !Array.isArray(c.redirect_uris) || c.redirect_uris.length === 0) {
    die(`clients[${i}] needs client_id and redirect_uris`);
  }
  // Any other client metadata given (post_logout_redirect_uris, ...) goes to oidc-provider as is.
  return {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
    ...c,
  };
});

const byLogin = new Map();
const bySub = new Map();
cfg.accounts.forEach((a, i) => {
  if (typeof a.login !== 'string' || !a.login || typeof a.sub !== 'string' || !a.sub) {
    die(`accounts[${i}] needs "login" and "sub" (non-empty strings)`);
  }
  if (byLogin.has(a.login)) die(`accounts[${i}]: login "${a.login}" appears twice`);
  if (bySub.has(a.sub)) die(`accounts[${i}]: sub "${a.sub}" appears twice`);
  byLogin.set(a.login, a);
  bySub.set(a.sub, a);
});

// ---- signing keys: one RS256 and one ES256, new at every start ------------------------------
function thumbprint(jwk) { // RFC 7638
  const members = jwk.kty === 'RSA'
    ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
    : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return crypto.createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}
function signingKey(type, options, alg) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: thumbprint(jwk), alg, use: 'sig' };
}
const jwks = {
  keys: [
    signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
    signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
  ],
};

// ---- accounts ---------------------------------------------------------------------------------
// The session's accountId is the account's `sub` (the login form maps login -> sub), so
// findAccount looks accounts up by sub.
async function findAccount(ctx, sub) {
  const a = bySub.get(sub);
  if (!a) return undefined;
  return {
    accountId: a.sub,
    async claims(use, scope) {
      const scopes = new Set(String(scope || '').split(' '));
      const out = { sub: a.sub };
      if (scopes.has('email')) {
        if (a.email !== undefined) out.email = a.email;
        if (a.email_verified !== undefined) out.email_verified = a.email_verified;
      }
      if (scopes.has('profile') && a.name !== undefined) out.name = a.name;
      return out;
    },
  };
}

// ---- the interaction pages (login form, automatic consent, abort) ---------------------------
const html = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(res, uid, clientId, error) {
  const body = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign-in</title></head>
<body>
<h1>Sign in to ${html(clientId)}</h1>
${error ? `<p id="error" class="error">${html(error)}</p>` : ''}
<form id="login" method="post" action="/interaction/${html(uid)}/login" autocomplete="off">
  <label>Login <input type="text" name="login" autofocus></label>
  <label>Password <input type="password" name="password"></label>
  <input type="hidden" name="prompt" value="login">
  <button type="submit">Sign in</button>
</form>
<p><a id="abort" href="/interaction/${html(uid)}/abort">Cancel</a></p>
</body></html>
`;
  res.writeHead(error ? 401 : 200, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(body);
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      data += chunk;
      if (data.length > 64 * 1024) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(data)));
    req.on('error', reject);
  });
}

async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction uid does not match its cookie');
  const { prompt, params, session } = details;

  if (action === 'abort') {
    log(`interaction ${uid}: aborted by the user`);
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (prompt.name === 'login') {
    if (action === '') {
      loginPage(res, uid, params.client_id);
      return;
    }
    if (action === 'login' && req.method === 'POST') {
      const form = await readForm(req);
      const login = form.get('login') ?? '';
      const account = byLogin.get(login);
      if (!account) {
        log(`interaction ${uid}: unknown login ${JSON.stringify(login)}`);
        loginPage(res, uid, params.client_id, `unknown login: ${login}`);
        return;
      }
      log(`interaction ${uid}: login ${JSON.stringify(login)} -> sub ${account.sub}`);
      await provider.interactionFinished(req, res, {
        login: { accountId: account.sub },
      }, { mergeWithLastSubmission: false });
      return;
    }
  }

  if (prompt.name === 'consent') {
    // First-party test clients: grant whatever the consent prompt says is missing.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scope] of Object.entries(d.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
    const grantId = await grant.save();
    log(`interaction ${uid}: consent granted automatically (${[...(d.missingOIDCScope ?? [])].join(' ')})`);
    await provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
    return;
  }

  res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`unexpected interaction: prompt ${prompt.name}, ${req.method} ${action || '(page)'}\n`);
}

// ---- the server ------------------------------------------------------------------------------
let handler = (req, res) => {
  res.writeHead(503);
  res.end();
};
const server = https.createServer({
  cert: fs.readFileSync(path.join(dir, 'cert.pem')),
  key: fs.readFileSync(path.join(dir, 'key.pem')),
}, (req, res) => handler(req, res));

function writeAtomically(file, data) {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

server.on('error', (e) => die(`cannot listen: ${e.message}`));
server.listen(port, '127.0.0.1', () => {
  const actualPort = server.address().port;
  const issuer = `https://${issuerHost}:${actualPort}`;
  const provider = new Provider(issuer, {
    clients,
    jwks,
    findAccount,
    responseTypes: ['code'],
    scopes: ['openid', 'email', 'profile'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    // All explicit (oidc-provider prints a NOTICE for each default TTL function it calls).
    ttl: {
      IdToken: idTokenTtl,
      AccessToken: 3600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false },
    },
    interactions: { url: (ctx, i) => `/interaction/${i.uid}` },
  });
  for (const ev of ['authorization.error', 'grant.error', 'server_error', 'userinfo.error',
    'introspection.error', 'revocation.error', 'end_session.error']) {
    provider.on(ev, (ctx, err) => log(`${ev}: ${err?.message ?? err}${err?.error_description ? ` (${err.error_description})` : ''}`));
  }
  provider.on('grant.success', (ctx) => log(`grant.success: client ${ctx.oidc.client?.clientId}`));

  const callback = provider.callback();
  handler = (req, res) => {
    res.on('finish', () => log(`${req.method} ${req.url.split('?')[0]} -> ${res.statusCode}`));
    const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?\/?(?:\?.*)?$/.exec(req.url);
    if (!m) {
      callback(req, res);
      return;
    }
    interaction(provider, req, res, m[1], m[2] ?? '').catch((e) => {
      log(`interaction ${m[1]}: ${e.name}: ${e.message}`);
      if (!res.headersSent) {
        res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`interaction failed: ${e.message}\n`);
      }
    });
  };

  writeAtomically(path.join(dir, 'pid'), String(process.pid));
  writeAtomically(path.join(dir, 'port'), String(actualPort));
  writeAtomically(path.join(dir, 'issuer'), issuer);
  log(`listening on 127.0.0.1:${actualPort}, issuer ${issuer}, ${clients.length} client(s), ${byLogin.size} account(s), keys ${jwks.keys.map((k) => `${k.alg}:${k.kid}`).join(' ')}`);
});

function shutdown(why) {
  log(`stopping: ${why}`);
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
setInterval(() => {
  if (!fs.existsSync(dir)) shutdown(`${dir} was removed`);
}, 1000);
