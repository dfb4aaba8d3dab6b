'use strict';
// The cost model's charges (read from /admin/stats: deterministic, no timing), the per-path
// stats, the fault options for the worker's tests, document modes and URL limits.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('../support/spawn');

let srv;
test.before(async () => {
  // Defaults of the cost model, but no read cost and no parse cost unless a test sets them.
  srv = await startServer(['--doc', 'docA', '--key', 'keyA', '--doc', 'docB', '--key', 'keyA',
    '--read-fixed-ms', '0', '--parse-ms-per-mb', '0']);
});
test.after(async () => { await srv.stop(); });

const close = (a, b, what) => assert.ok(Math.abs(a - b) < 6e-4, `${what}: ${a} != ${b}`);
const docStats = async (doc = 'docA') => (await srv.admin('GET', '/stats')).json.docs[doc];

async function table(id, ncols) {
  const columns = [{ id: 'k', fields: { type: 'Int' } }];
  for (let i = 1; i < ncols; i++) { columns.push({ id: `c${i}`, fields: { type: 'Text' } }); }
  const r = await srv.api('POST', '/tables', { tables: [{ id, columns }] });
  assert.equal(r.status, 200, r.text);
  return r.json.tables[0].id;
}
function recs(from, n, ncols, v) {
  return Array.from({ length: n }, (_, i) => {
    const fields = {};
    for (let c = 1; c < ncols; c++) { fields[`c${c}`] = `v${v}-${from + i}-${c}`; }
    return { require: { k: from + i }, fields };
  });
}

test('cost model: a write costs fixed + per row + per cell; updates charge changed cells, unchanged ones less', async () => {
  const s = (await srv.admin('GET', '/config')).json;
  assert.deepEqual([s.writeFixedMs, s.writePerRowMs, s.writePerCellMs, s.writePerUpdatedRowMs, s.writePerUpdatedCellMs],
    [8, 0.02, 0.0044, 0.01, 0.0022], 'defaults from grist-core 1.7.17 (notes)');
  await srv.admin('POST', '/stats/reset');
  const t = await table('Wide', 61);
  let st = await docStats();
  close(st.busyMs, s.writeFixedMs + 62 * s.writePerColumnMs, 'table creation: 61 columns + manualSort');
  assert.equal(st.columnsAdded, 62);

  await srv.admin('POST', '/stats/reset');
  let r = await srv.api('PUT', `/tables/${t}/records`, { records: recs(1, 100, 61, 1) });
  assert.equal(r.status, 200);
  st = await docStats();
  assert.deepEqual([st.writes, st.rowsAdded, st.cellsAdded], [1, 100, 6100]);
  close(st.busyMs, 8 + 100 * 0.02 + 6100 * 0.0044, '100 new rows of 61 cells');

  // Update: 100 rows, 60 fields each, 1 changed: Grist trims the unchanged values.
  await srv.admin('POST', '/stats/reset');
  const upd = recs(1, 100, 61, 1);
  for (const u of upd) { u.fields.c7 = 'changed'; }
  r = await srv.api('PUT', `/tables/${t}/records`, { records: upd });
  assert.equal(r.status, 200);
  st = await docStats();
  assert.deepEqual([st.rowsUpdated, st.cellsUpdated, st.cellsUnchanged], [100, 100, 5900]);
  close(st.busyMs, 8 + 100 * 0.01 + 100 * 0.0022 + 5900 * 0.0011, 'update of one cell per row sent with full rows');

  // Only the changed cell sent: much cheaper.
  await srv.admin('POST', '/stats/reset');
  r = await srv.api('PUT', `/tables/${t}/records`, { records: recs(1, 100, 2, 1).map((x) => ({ require: x.require, fields: { c1: 'again' } })) });
  st = await docStats();
  close(st.busyMs, 8 + 100 * 0.01 + 100 * 0.0022, 'only the changed cells sent');

  // Removal: per row and per cell of the removed rows; a failing write costs writeFixedMs.
  await srv.admin('POST', '/stats/reset');
  r = await srv.api('POST', `/tables/${t}/records/delete`, [1, 2]);
  assert.equal(r.status, 200);
  r = await srv.api('POST', `/tables/${t}/records/delete`, [1]);
  assert.deepEqual([r.status, r.json], [400, { error: 'Invalid row id 1' }], 'a row already gone');
  st = await docStats();
  assert.equal(st.rowsRemoved, 2);
  close(st.busyMs, (8 + 2 * 0.01 + 2 * 61 * 0.0022) + 8, 'delete then failed delete');
});

test('cost model: JSON parsing charged per MB of body, before admission', async () => {
  const t = await table('Parse', 5);
  await srv.admin('POST', '/config', { parseMsPerMB: 20 });
  await srv.admin('POST', '/stats/reset');
  const raw = JSON.stringify({ records: recs(1, 1000, 5, 1) });
  const r = await srv.api('PUT', `/tables/${t}/records`, undefined, { raw, headers: { 'Content-Type': 'application/json' } });
  assert.equal(r.status, 200);
  const s = (await srv.admin('GET', '/stats')).json;
  close(s.parseMs, Math.round(20 * raw.length / (1024 * 1024) * 1000) / 1000, 'parse cost');
  assert.equal(s.docs.docA.paths[`PUT /tables/${t}/records`].bytes, raw.length);
  await srv.admin('POST', '/config', { parseMsPerMB: 0 });
});

test('stats: requests, bytes and statuses per document and path; highest in flight', async () => {
  await srv.admin('POST', '/stats/reset');
  const t = await table('Paths', 2);
  await Promise.all([1, 2, 3].map((i) => srv.api('PUT', `/tables/${t}/records`, { records: recs(i, 1, 2, 1) })));
  await srv.api('GET', `/tables/${t}/records`);
  await srv.api('GET', '/tables/Nope/records');
  const st = await docStats();
  assert.equal(st.paths['POST /tables'].requests, 1);
  close(st.paths['POST /tables'].busyMs, 8 + 3 * 1, 'model time per path: 2 columns + manualSort');
  assert.equal(st.paths[`PUT /tables/${t}/records`].requests, 3);
  assert.ok(st.paths[`PUT /tables/${t}/records`].bytes > 0);
  assert.deepEqual(st.paths['GET /tables/Nope/records'].byStatus, { 404: 1 });
  assert.equal(st.byStatus['200'], 5);
  assert.ok(st.maxApiInFlight >= 1 && st.maxApiInFlight <= 3);
});

test('fault apply: the request is applied, answered after delayMs; a retry creates a suffixed table (Grist does)', async () => {
  let r = await srv.admin('POST', '/faults', { doc: 'docA', method: 'POST', pattern: '^/tables$', apply: true, delayMs: 400 });
  assert.equal(r.status, 200);
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 100);
  await assert.rejects(fetch(`${srv.base}/api/docs/docA/tables`, {
    method: 'POST', signal: ctl.signal, headers: { Authorization: 'Bearer keyA', 'Content-Type': 'application/json' },
    body: JSON.stringify({ tables: [{ id: 'Dossiers', columns: [{ id: 'numero', fields: { type: 'Int' } }] }] }),
  }), 'the client timed out');
  clearTimeout(timer);
  r = await srv.api('GET', '/tables');
  assert.ok(r.json.tables.some((x) => x.id === 'Dossiers'), 'Grist applied it');
  assert.equal((await docStats()).inFlight, 1, 'the late answer holds its slot');
  r = await srv.api('POST', '/tables', { tables: [{ id: 'Dossiers', columns: [{ id: 'numero' }] }] });
  assert.deepEqual(r.json, { tables: [{ id: 'Dossiers2' }] });
  // Columns: same for POST .../columns, a retry gets col_2-style suffixes.
  await srv.admin('POST', '/faults', { doc: 'docA', method: 'POST', pattern: '/columns$', apply: true, delayMs: 300 });
  const body = { columns: [{ id: 'champ_1', fields: { type: 'Text' } }] };
  r = await srv.api('POST', '/tables/Dossiers/columns', body);
  assert.deepEqual([r.status, r.json], [200, { columns: [{ id: 'champ_1' }] }], 'answered late, with the real answer');
  r = await srv.api('POST', '/tables/Dossiers/columns', body);
  assert.deepEqual(r.json, { columns: [{ id: 'champ_1_2' }] });
  // apply + an error status: applied, then 504 (a proxy's timeout).
  await srv.admin('POST', '/faults', { doc: 'docA', method: 'POST', pattern: '/columns$', apply: true, status: 504 });
  r = await srv.api('POST', '/tables/Dossiers/columns', { columns: [{ id: 'x' }] });
  assert.equal(r.status, 504);
  r = await srv.api('GET', '/tables/Dossiers/columns');
  assert.ok(r.json.columns.some((c) => c.id === 'x'));
});

test('fault bodies: text/html echoing the request headers; Retry-After; count -1', async () => {
  await srv.admin('POST', '/faults', { doc: 'docA', status: 400, body: 'html-echo', count: 2 });
  let r = await srv.api('GET', '/tables', undefined, { headers: { 'X-Test': 'yes' } });
  assert.equal(r.status, 400);
  assert.equal(r.headers.get('content-type'), 'text/html');
  assert.match(r.text, /Authorization: Bearer keyA/);
  assert.match(r.text, /X-Test: yes/);
  r = await srv.api('GET', '/tables');
  assert.match(r.text, /<title>400 Bad Request<\/title>/);
  r = await srv.api('GET', '/tables');
  assert.equal(r.status, 200, 'count 2 used up');
  await srv.admin('POST', '/faults', { doc: 'docB', status: 503, retryAfter: 7, count: -1 });
  for (let i = 0; i < 3; i++) {
    r = await srv.api('GET', '/tables', undefined, { doc: 'docB' });
    assert.deepEqual([r.status, r.headers.get('retry-after')], [503, '7']);
  }
  await srv.admin('DELETE', '/faults');
  r = await srv.api('GET', '/tables', undefined, { doc: 'docB' });
  assert.equal(r.status, 200);
  assert.equal((await srv.admin('POST', '/faults', { status: 500, count: 0 })).status, 400);
});

test('document modes: revoked (401) and restored, deleted (404), alternate (every other 502), slow', async () => {
  let r = await srv.admin('POST', '/docs/docB/mode', { mode: 'revoked' });
  assert.equal(r.json.mode, 'revoked');
  r = await srv.api('GET', '/tables', undefined, { doc: 'docB' });
  assert.deepEqual([r.status, r.json], [401, { error: 'Bad request: invalid API key' }]);
  r = await srv.api('PUT', '/tables/X/records', { records: [] }, { doc: 'docB' });
  assert.equal(r.status, 401);
  r = await srv.api('GET', '/tables');
  assert.equal(r.status, 200, 'the other document is not touched');
  await srv.admin('POST', '/docs/docB/mode', { mode: 'normal' });
  r = await srv.api('GET', '/tables', undefined, { doc: 'docB' });
  assert.equal(r.status, 200, 'restored');

  await srv.admin('POST', '/docs/docB/mode', { mode: 'deleted' });
  r = await srv.api('GET', '/tables', undefined, { doc: 'docB' });
  assert.deepEqual([r.status, r.json], [404, { error: 'document not found' }]);

  await srv.admin('POST', '/docs/docB/mode', { mode: 'alternate' });
  const statuses = [];
  for (let i = 0; i < 4; i++) { statuses.push((await srv.api('GET', '/tables', undefined, { doc: 'docB' })).status); }
  assert.deepEqual(statuses, [200, 502, 200, 502]);
  r = await srv.api('GET', '/tables', undefined, { doc: 'docB' });
  r = await srv.api('GET', '/tables', undefined, { doc: 'docB' });
  assert.equal(r.headers.get('content-type'), 'text/html', "a proxy's page");

  await srv.admin('POST', '/docs/docB/mode', { mode: 'slow', slowMs: 50 });
  await srv.admin('POST', '/stats/reset');
  r = await srv.api('POST', '/tables', { tables: [{ id: 'S', columns: [{ id: 'a' }] }] }, { doc: 'docB' });
  assert.equal(r.status, 200);
  const st = await docStats('docB');
  close(st.busyMs, 8 + 2 * 1 + 50, 'slowMs added to each write');
  assert.equal(st.mode.mode, 'slow');
  assert.equal((await srv.admin('POST', '/docs/docB/mode', { mode: 'sideways' })).status, 400);
  await srv.admin('POST', '/docs/docB/mode', { mode: 'normal' });
});

test('URL limits: Node answers 431 above its 16 KB header limit; --max-url-bytes answers 414 as a proxy', async () => {
  const long = `/api/docs/docA/tables/Wide/records?filter=${encodeURIComponent(JSON.stringify({ k: Array.from({ length: 3000 }, (_, i) => i) }))}`;
  assert.ok(long.length > 16 * 1024);
  let res = await fetch(srv.base + long, { headers: { Authorization: 'Bearer keyA' } });
  assert.equal(res.status, 431);
  await srv.admin('POST', '/config', { maxUrlBytes: 8192 });
  const mid = `/api/docs/docA/tables/Wide/records?filter=${encodeURIComponent(JSON.stringify({ k: Array.from({ length: 1500 }, (_, i) => i) }))}`;
  assert.ok(mid.length > 8192 && mid.length < 16 * 1024);
  res = await fetch(srv.base + mid, { headers: { Authorization: 'Bearer keyA' } });
  assert.equal(res.status, 414);
  assert.match(await res.text(), /414 Request-URI Too Large/);
  await srv.admin('POST', '/config', { maxUrlBytes: 0 });
  res = await fetch(srv.base + mid, { headers: { Authorization: 'Bearer keyA' } });
  assert.equal(res.status, 200);
});
