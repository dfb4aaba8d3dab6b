'use strict';
// Access tokens (?auth=) as grist-core: issued by /admin/access-token, refused when forged,
// expired, read-only on a write, or for another document.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('../support/spawn');
const { signJwt } = require('../lib/tokens');

let srv;
test.before(async () => {
  srv = await startServer(['--doc', 'docA', '--key', 'keyA', '--doc', 'docB', '--key', 'keyB']);
  const r = await srv.admin('POST', '/keys', { key: 'viewer', docs: [{ id: 'docA', access: 'viewers' }] });
  assert.equal(r.status, 200);
});
test.after(async () => { assert.equal(await srv.stop(), 0); });

async function mint(body) {
  const r = await srv.admin('POST', '/access-token', body);
  assert.equal(r.status, 200, r.text);
  return r.json;
}
const withAuth = (method, doc, p, token, body) => srv.request(method, `/api/docs/${doc}${p}?auth=${encodeURIComponent(token)}`,
  { body, key: null });

test('a read-write token reads and writes its document, as getAccessToken returns it', async () => {
  const t = await mint({ doc: 'docA', key: 'keyA', readOnly: false });
  assert.equal(t.baseUrl, `${srv.base}/api/docs/docA`);
  assert.equal(t.ttlMsecs, 900000);
  assert.equal((await withAuth('GET', 'docA', '/tables', t.token)).status, 200);
  const f = await withAuth('POST', 'docA', '/flush', t.token, {});
  assert.equal(f.status, 200);
  assert.equal(f.json, true);
});

test('a read-only token reads but cannot write', async () => {
  const t = await mint({ doc: 'docA', key: 'keyA', readOnly: true });
  assert.equal((await withAuth('GET', 'docA', '/tables', t.token)).status, 200);
  const f = await withAuth('POST', 'docA', '/flush', t.token, {});
  assert.equal(f.status, 403);
  assert.equal(f.json.error, 'No write access');
});

test("a viewer's token is read-only whatever was asked", async () => {
  const t = await mint({ doc: 'docA', key: 'viewer', readOnly: false });
  const f = await withAuth('POST', 'docA', '/flush', t.token, {});
  assert.equal(f.status, 403);
  assert.equal(f.json.error, 'No write access');
});

test('expired, forged, broken and other-document tokens are refused', async () => {
  const exp = await mint({ doc: 'docA', key: 'keyA', ttlMs: 0 });
  let r = await withAuth('GET', 'docA', '/tables', exp.token);
  assert.equal(r.status, 401);
  assert.equal(r.json.error, 'Token has expired');
  const forged = signJwt({ docId: 'docA', userId: 1, readOnly: false, iat: 1, exp: 4102444800 }, 'not the secret');
  r = await withAuth('POST', 'docA', '/flush', forged, {});
  assert.equal(r.status, 401);
  assert.equal(r.json.error, 'Cannot verify token');
  r = await withAuth('GET', 'docA', '/tables', 'garbage');
  assert.equal(r.status, 401);
  assert.equal(r.json.error, 'Broken token');
  const b = await mint({ doc: 'docB', key: 'keyB' });
  r = await withAuth('POST', 'docA', '/flush', b.token, {});
  assert.equal(r.status, 403);
  assert.equal(r.json.error, 'Document access denied');
});

test('a token-authenticated write needs a JSON content type (CSRF guard)', async () => {
  const t = await mint({ doc: 'docA', key: 'keyA' });
  const r = await srv.request('POST', `/api/docs/docA/flush?auth=${t.token}`, { key: null, raw: '' });
  assert.equal(r.status, 401);
});
