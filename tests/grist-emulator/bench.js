#!/usr/bin/env node
'use strict';
// Reproduces the table of /work/shared/notes/grist-api.md against the emulator's default cost
// model: PUT /records upserts of 41-column records (~1.2 KB each), 1..800 records per request,
// new rows then updates; concurrent writers of 100-record batches; 12 writers against a cap
// of 10. Extra arguments are passed to server.js (e.g. --reject-cost-ms 2).
//
//   node bench.js [server args...]

const { startServer } = require('./support/spawn');

const TEXT = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod te';

function columns() {
  const cols = [{ id: 'numero', fields: { type: 'Int' } }];
  for (let i = 0; i < 10; i++) { cols.push({ id: `t${i}`, fields: { type: 'Text' } }); }
  for (let i = 0; i < 10; i++) { cols.push({ id: `n${i}`, fields: { type: 'Numeric' } }); }
  for (let i = 0; i < 10; i++) { cols.push({ id: `d${i}`, fields: { type: 'Date' } }); }
  for (let i = 0; i < 10; i++) { cols.push({ id: `b${i}`, fields: { type: 'Bool' } }); }
  return cols;
}

function record(numero, variant) {
  const fields = {};
  for (let i = 0; i < 10; i++) { fields[`t${i}`] = `${TEXT} ${variant}${i}`; }
  for (let i = 0; i < 10; i++) { fields[`n${i}`] = numero * 1.5 + i + variant; }
  for (let i = 0; i < 10; i++) { fields[`d${i}`] = `2024-0${1 + (i % 9)}-1${variant % 10}`; }
  for (let i = 0; i < 10; i++) { fields[`b${i}`] = (i + variant) % 2 === 0; }
  return { require: { numero }, fields };
}

const batchBody = (start, n, variant) => ({ records: Array.from({ length: n }, (_, i) => record(start + i, variant)) });

async function newTable(srv, name) {
  const r = await srv.api('POST', '/tables', { tables: [{ id: name, columns: columns() }] });
  if (r.status !== 200) { throw new Error(`create table: ${r.status} ${r.text}`); }
  return r.json.tables[0].id;
}

async function timedSeries(srv, table, n, count, variant, startAt) {
  let bytes = 0;
  const t0 = performance.now();
  for (let k = 0; k < count; k++) {
    const body = batchBody(startAt + k * n, n, variant);
    const raw = JSON.stringify(body);
    bytes = raw.length;
    const r = await srv.api('PUT', `/tables/${table}/records`, undefined, { raw, headers: { 'Content-Type': 'application/json' } });
    if (r.status !== 200) { throw new Error(`PUT ${n}: ${r.status} ${r.text}`); }
  }
  const ms = performance.now() - t0;
  return { msPerReq: ms / count, rowsPerSec: (n * count) / (ms / 1000), bytes };
}

async function writers(srv, table, nWriters, batches, { retryDelayMs = 0 } = {}) {
  let next = 0;
  let ok = 0;
  let rejected = 0;
  let other = 0;
  const t0 = performance.now();
  async function writer() {
    for (;;) {
      const b = next++;
      if (b >= batches) { return; }
      const raw = JSON.stringify(batchBody(1e6 + b * 100, 100, 1));
      for (;;) {
        const r = await srv.api('PUT', `/tables/${table}/records`, undefined, { raw, headers: { 'Content-Type': 'application/json' } });
        if (r.status === 200) { ok++; break; }
        if (r.status === 429) { rejected++; if (retryDelayMs) { await new Promise((res) => setTimeout(res, retryDelayMs)); } continue; }
        other++; break;
      }
    }
  }
  await Promise.all(Array.from({ length: nWriters }, writer));
  const ms = performance.now() - t0;
  return { ok, rejected, other, rowsPerSec: (ok * 100) / (ms / 1000), ms };
}

async function main() {
  const extra = process.argv.slice(2);
  const srv = await startServer(['--doc', 'docA', '--key', 'keyA', ...extra]);
  try {
    const settings = (await srv.admin('GET', '/config')).json;
    console.log(`emulator settings: ${JSON.stringify(settings)}`);
    console.log('\nPUT /records upserts, 41 columns, one writer');
    console.log('| records/request | body | new rows: ms/request | updates: ms/request | new rows/s |');
    console.log('|---|---|---|---|---|');
    const plan = [[1, 100], [10, 60], [100, 30], [500, 10], [800, 8]];
    for (const [n, count] of plan) {
      const table = await newTable(srv, `Bench${n}`);
      const add = await timedSeries(srv, table, n, count, 1, 1);
      const upd = await timedSeries(srv, table, n, count, 2, 1);
      console.log(`| ${n} | ${(add.bytes / 1000).toFixed(1)} kB | ${add.msPerReq.toFixed(1)} | ${upd.msPerReq.toFixed(1)} | ${Math.round(add.rowsPerSec)} |`);
    }
    const table1000 = await newTable(srv, 'Bench1000');
    const raw = JSON.stringify(batchBody(1, 1000, 1));
    const r = await srv.api('PUT', `/tables/${table1000}/records`, undefined, { raw, headers: { 'Content-Type': 'application/json' } });
    console.log(`| 1000 | ${(raw.length / 1000).toFixed(1)} kB | ${r.status} ${r.text} | | |`);

    console.log('\nConcurrent writers, 100-record batches of new rows (429 retried at once)');
    console.log('| writers | cap | batches ok | 429s | rows/s |');
    console.log('|---|---|---|---|---|');
    for (const w of [1, 2, 4, 8]) {
      const table = await newTable(srv, `W${w}`);
      const res = await writers(srv, table, w, 60);
      console.log(`| ${w} | ${settings.maxParallelPerDoc} | ${res.ok} | ${res.rejected} | ${Math.round(res.rowsPerSec)} |`);
    }
    {
      const table = await newTable(srv, 'W12');
      const res = await writers(srv, table, 12, 50);
      console.log(`| 12 | ${settings.maxParallelPerDoc} | ${res.ok} | ${res.rejected} | ${Math.round(res.rowsPerSec)} |`);
    }
    const stats = (await srv.admin('GET', '/stats')).json;
    console.log(`\nmaxInFlight on docA: ${stats.docs.docA.maxInFlight}; total 429s: ${stats.sent429}`);
  } finally {
    await srv.stop();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
