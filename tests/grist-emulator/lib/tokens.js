'use strict';
// Document access tokens, as grist-core's app/server/lib/AccessTokens.ts: a JWT (HS256) signed
// with a per-document secret, payload {docId, userId, readOnly, iat, exp}, what the plugin API's
// getAccessToken returns. The document API accepts one as ?auth=<token> (Authorizer.ts); a
// read-only one (or one for a user who can only view) gives at most viewer access
// (AccessTokenCredential.ts), a token for another document is refused.

const crypto = require('crypto');
const { ApiError } = require('./errors');

const b64url = (buf) => Buffer.from(buf).toString('base64url');

class AccessTokens {
  constructor() {
    this.secrets = new Map();   // docId -> secret (Buffer)
    this.userIds = new Map();   // API key (the user) -> numeric user id
    this.users = new Map();     // numeric user id -> API key
  }

  userId(key) {
    let id = this.userIds.get(key);
    if (!id) { id = this.userIds.size + 1; this.userIds.set(key, id); this.users.set(id, key); }
    return id;
  }

  secret(docId) {
    let s = this.secrets.get(docId);
    if (!s) { s = crypto.randomBytes(32); this.secrets.set(docId, s); }
    return s;
  }

  // Signs {docId, userId, readOnly}; ttlMs <= 0 gives an already expired token (tests).
  sign(docId, key, readOnly, ttlMs) {
    const iat = Math.floor(Date.now() / 1000);
    const payload = { readOnly: Boolean(readOnly), userId: this.userId(key), docId, iat, exp: iat + Math.floor(ttlMs / 1000) };
    if (ttlMs <= 0) { payload.exp = iat - 1 + Math.floor(ttlMs / 1000); }
    return signJwt(payload, this.secret(docId));
  }

  // Returns {docId, key, readOnly} or throws Grist's 401s.
  verify(token) {
    const parts = String(token).split('.');
    let payload = null;
    if (parts.length === 3) {
      try { payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')); } catch (e) { payload = null; }
    }
    if (!payload || typeof payload !== 'object' || typeof payload.docId !== 'string' || !payload.docId) {
      throw new ApiError(401, 'Broken token');
    }
    const secret = this.secrets.get(payload.docId);
    const expected = secret ? b64url(crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest()) : '';
    let header = null;
    try { header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')); } catch (e) { header = null; }
    const sigOk = secret && header && header.alg === 'HS256' && expected.length === parts[2].length &&
      crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(parts[2]));
    if (!sigOk) { throw new ApiError(401, 'Cannot verify token'); }
    if (typeof payload.exp === 'number' && payload.exp * 1000 <= Date.now()) { throw new ApiError(401, 'Token has expired'); }
    const key = this.users.get(payload.userId);
    if (!key) { throw new ApiError(401, 'Bad request: invalid auth param'); }
    return { docId: payload.docId, key, readOnly: Boolean(payload.readOnly) };
  }
}

function signJwt(payload, secret) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(payload));
  const sig = b64url(crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest());
  return `${head}.${body}.${sig}`;
}

module.exports = { AccessTokens, signJwt };
