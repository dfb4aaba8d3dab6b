'use strict';
// The per-document cap, serialized writes, slot occupation, faults, runtime config.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('../support/spawn');

const BACKLOG = { error: 'Too many backlogged requests for document docA - try again later?' };

let srv;
test.before(async () => {
  srv = await startServer(['--doc', 'docA', '--key', 'keyA', '--cap', '10', '--write-fixed-ms', '300', '--read-fixed-ms', '2']);
  const r = await srv.api('POST', '/tables', { tables: [{ id: 'T', columns: [{ id: 'n', fields: { type: 'Int' } }] }] });
  assert.equal(r.status, 200);
});
test.after(async () => { await srv.stop(); });

const put = (n) => srv.api('PUT', '/tables/T/records', { records: [{ require: { n }, fields: {} }] });

test('cap: 30 parallel writes at a cap of 10 while writes are slow -> 10 successes, 20 x 429', async () => {
  // Writes slow enough that all 30 requests arrive before the first is answered, even on a
  // loaded machine.
  await srv.admin('POST', '/config', { writeFixedMs: 800 });
  await srv.admin('POST', '/stats/reset');
  const t0 = Date.now();
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => put(i + 1)));
  const elapsed = Date.now() - t0;
  const ok = results.filter((r) => r.status === 200);
  const rejected = results.filter((r) => r.status === 429);
  console.log(`cap test: ${ok.length} x 200, ${rejected.length} x 429 in ${elapsed} ms`);
  assert.equal(ok.length, 10);
  assert.equal(rejected.length, 20);
  for (const r of rejected) {
    assert.deepEqual(r.json, BACKLOG);
    assert.equal(r.text, JSON.stringify(BACKLOG));
    assert.equal(r.headers.get('retry-after'), null);
  }
  const s = (await srv.admin('GET', '/stats')).json;
  assert.equal(s.docs.docA.maxInFlight, 10);
  assert.equal(s.docs.docA.sent429, 20);
  assert.equal(s.sent429, 20);
  assert.equal(s.requests.byKind['PUT records'], 30);
  assert.equal(s.requests.byStatus['429'], 20);
  assert.equal(s.docs.docA.tables.T, 10, 'only the admitted writes were applied');
  await srv.admin('POST', '/config', { writeFixedMs: 300 });
});

test('writes are serialized: two concurrent writes take about twice as long as one', async () => {
  let t0 = performance.now();
  await put(1001);
  const one = performance.now() - t0;
  t0 = performance.now();
  const ends = [];
  await Promise.all([put(1002).then(() => ends.push(performance.now() - t0)), put(1003).then(() => ends.push(performance.now() - t0))]);
  const two = performance.now() - t0;
  console.log(`serialized writes (writeFixedMs 300): one write ${one.toFixed(1)} ms; two concurrent: ` +
    `first done at ${ends[0].toFixed(1)} ms, second at ${ends[1].toFixed(1)} ms (ratio ${(two / one).toFixed(2)})`);
  assert.ok(one >= 290, 'a write takes writeFixedMs');
  assert.ok(two > 1.5 * one && two < 3 * one, 'loose sanity factor');
});

test('reads do not wait for writes', async () => {
  const w = put(2001);
  await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  const r = await srv.api('GET', '/tables/T/records?limit=1');
  const readMs = performance.now() - t0;
  await w;
  console.log(`read during a 300 ms write: ${readMs.toFixed(1)} ms`);
  assert.equal(r.status, 200);
  assert.ok(readMs < 250);
});

test('occupy: slots held by "other users" count against the cap', async () => {
  await srv.admin('POST', '/config', { writeFixedMs: 0 });
  let r = await srv.admin('POST', '/docs/docA/occupy', { slots: 10, ms: 400 });
  assert.equal(r.status, 200);
  r = await srv.api('GET', '/tables');
  assert.deepEqual([r.status, r.json], [429, BACKLOG]);
  await srv.admin('POST', '/docs/docA/occupy', { slots: 0, ms: 0 });
  await new Promise((res) => setTimeout(res, 450));
  r = await srv.api('GET', '/tables');
  assert.equal(r.status, 200);
  const s = (await srv.admin('GET', '/stats')).json;
  assert.equal(s.docs.docA.inFlight, 0);
});

test('faults: next matching requests fail with the given status, nothing applied', async () => {
  await srv.admin('POST', '/config', { writeFixedMs: 0 });
  let r = await srv.admin('POST', '/faults', { doc: 'docA', status: 502, count: 2, path: '/records' });
  assert.equal(r.status, 200);
  const before = (await srv.admin('GET', '/stats')).json.docs.docA.tables.T;
  r = await srv.api('GET', '/tables');
  assert.equal(r.status, 200, 'path does not match');
  r = await put(3001);
  assert.equal(r.status, 502);
  assert.equal(typeof r.json.error, 'string');
  r = await put(3002);
  assert.equal(r.status, 502);
  r = await put(3003);
  assert.equal(r.status, 200);
  assert.equal((await srv.admin('GET', '/stats')).json.docs.docA.tables.T, before + 1);
  await srv.admin('POST', '/faults', { status: 500, count: 5, error: 'boom' });
  r = await srv.api('GET', '/tables');
  assert.deepEqual([r.status, r.json], [500, { error: 'boom' }]);
  r = await srv.admin('DELETE', '/faults');
  r = await srv.api('GET', '/tables');
  assert.equal(r.status, 200);
});

test('config: cap 0 means unlimited', async () => {
  await srv.admin('POST', '/config', { maxParallelPerDoc: 0, writeFixedMs: 50 });
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => put(4000 + i)));
  assert.ok(results.every((r) => r.status === 200));
  const bad = await srv.admin('POST', '/config', { nope: 1 });
  assert.equal(bad.status, 400);
});
