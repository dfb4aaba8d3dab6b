'use strict';
// --static-dir: the plugin API script and the pages a browser test stands in for Grist with
// (tests/browser/harness), and nothing else from that directory.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer } = require('../support/spawn');

let srv;
let dir;
test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grist-emu-static-'));
  fs.writeFileSync(path.join(dir, 'grist-plugin-api.js'), 'window.grist = {};\n');
  fs.writeFileSync(path.join(dir, 'grist.html'), '<!DOCTYPE html><title>doc</title>\n');
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'not served\n');
  fs.writeFileSync(path.join(dir, '.hidden.js'), 'not served\n');
  srv = await startServer(['--doc', 'docA', '--key', 'keyA', '--static-dir', dir]);
});
test.after(async () => {
  assert.equal(await srv.stop(), 0);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('serves the plugin API at /grist-plugin-api.js and pages under /pages/, with their types', async () => {
  let r = await fetch(`${srv.base}/grist-plugin-api.js`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/javascript; charset=utf-8');
  assert.equal(await r.text(), 'window.grist = {};\n');
  r = await fetch(`${srv.base}/pages/grist.html?widget=x`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
});

test('nothing else: other types, hidden files, paths out of the directory, other methods', async () => {
  for (const p of ['/pages/secret.txt', '/pages/.hidden.js', '/pages/..%2fserver.js', '/pages/../server.js',
                   '/pages/sub/grist.html', '/pages/', '/pages/missing.html', '/server.js']) {
    const r = await fetch(`${srv.base}${p}`);
    assert.equal(r.status, 404, p);
  }
  const r = await fetch(`${srv.base}/grist-plugin-api.js`, { method: 'POST', body: 'x' });
  assert.equal(r.status, 404);
  // The API still answers.
  assert.equal((await srv.request('GET', '/api/docs/docA/tables', { key: 'keyA' })).status, 200);
});
