'use strict';
// Configuration file, runtime document creation, CLI errors.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { startServer } = require('../support/spawn');

test('--config: documents, users with access levels, settings', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'grist-emu-cfg-')), 'config.json');
  fs.writeFileSync(file, JSON.stringify({
    docs: [{ id: 'docA', keys: ['keyA'] }],
    users: [{ key: 'reader', docs: [{ id: 'docA', access: 'viewers' }] }, { key: 'all', docs: ['*'] }],
    maxParallelPerDoc: 2, writeFixedMs: 0, readFixedMs: 200, bodyLimitBytes: 1048576,
  }));
  const srv = await startServer(['--config', file]);
  try {
    const cfg = (await srv.admin('GET', '/config')).json;
    assert.equal(cfg.maxParallelPerDoc, 2);
    assert.equal(cfg.readFixedMs, 200);
    assert.equal((await srv.api('GET', '/tables', undefined, { key: 'reader' })).status, 200);
    assert.equal((await srv.api('POST', '/tables', { tables: [{ columns: [{ id: 'a' }] }] }, { key: 'reader' })).status, 403);
    // Three slow reads at a cap of 2: one is refused at once.
    const t0 = performance.now();
    const rs = await Promise.all([1, 2, 3].map(() => srv.api('GET', '/tables', undefined, { key: 'all' })));
    assert.deepEqual(rs.map((r) => r.status).sort(), [200, 200, 429]);
    assert.ok(performance.now() - t0 >= 190);
    // Documents can be created at runtime; unnamed table gets Table1.
    assert.equal((await srv.admin('POST', '/docs', { id: 'docN', keys: ['keyN'] })).status, 200);
    const r = await srv.api('POST', '/tables', { tables: [{ columns: [{ id: 'a' }] }] }, { doc: 'docN', key: 'keyN' });
    assert.deepEqual(r.json, { tables: [{ id: 'Table1' }] });
  } finally {
    await srv.stop();
  }
});

test('bad command line: exit code 2 with usage', () => {
  const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'server.js'), '--bogus'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown argument --bogus/);
});
