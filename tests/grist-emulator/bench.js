#!/usr/bin/env node
'use strict';
// The emulator's cost model measured over HTTP, next to what grist-core 1.7.17 measured
// (/work/shared/notes/grist-api.md; the figures in brackets):
//   1. PUT /records upserts into a 61-column table (a DS dossiers table, ~2.9 KB per row) and
//      into a 5-column child table (~200 B per row), new rows then updates;
//   2. the 41-column table of the notes;
//   3. a plain loop writing 8,000 dossiers x 61 columns + 11,839 child rows into one document
//      (bodies up to 900 kB), 1, 2 and 4 requests in flight;
//   4. concurrent writers of 100-record batches, and 12 writers against the cap of 10.
// Extra arguments are passed to server.js (e.g. --parse-ms-per-mb 20).
//
//   node bench.js [server args...]

const { startServer } = require('./support/spawn');

const JSON_HEADERS = { 'Content-Type': 'application/json' };

// ---- data sets -------------------------------------------------------------------------------

// 61 columns: numero + 60 champs with DS-like ids, ~2.9 KB of JSON per record.
const WIDE_COLS = [{ id: 'numero', fields: { type: 'Int' } }];
for (let i = 0; i < 60; i++) {
  const type = ['Text', 'Text', 'Text', 'Numeric', 'Date', 'Bool', 'Choice', 'Text'][i % 8];
  WIDE_COLS.push({ id: `champ_Q2hhbXAtMTAw${String(i).padStart(3, '0')}`, fields: { type } });
}
const WORDS = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor'.split(' ');
function wideRecord(numero, variant) {
  const fields = {};
  for (let i = 1; i < WIDE_COLS.length; i++) {
    const c = WIDE_COLS[i];
    const k = numero * 7 + i + variant;
    switch (c.fields.type) {
      case 'Numeric': fields[c.id] = k * 1.25; break;
      case 'Date': fields[c.id] = `2024-0${1 + (k % 9)}-1${k % 10}`; break;
      case 'Bool': fields[c.id] = k % 2 === 0; break;
      case 'Choice': fields[c.id] = `option ${k % 5}`; break;
      default: fields[c.id] = `${WORDS[k % WORDS.length]} ${WORDS[(k + 3) % WORDS.length]} ${WORDS[(k + 6) % WORDS.length]} texte ${k} v${variant}`;
    }
  }
  return { require: { numero }, fields };
}

// 5 columns: a repetition child row, ~200 B.
const CHILD_COLS = [
  { id: 'dossier', fields: { type: 'Int' } }, { id: 'ligne', fields: { type: 'Text' } },
  { id: 'champ_libelle', fields: { type: 'Text' } }, { id: 'champ_montant', fields: { type: 'Numeric' } },
  { id: 'champ_date', fields: { type: 'Date' } },
];
function childRecord(n, variant) {
  return {
    require: { ligne: `Q2hhbXAtMTAw-${n}` },
    fields: {
      dossier: Math.floor(n / 1.5), champ_libelle: `${WORDS[n % WORDS.length]} ${WORDS[(n + 5) % WORDS.length]} ligne ${n} v${variant}`,
      champ_montant: n * 3.5 + variant, champ_date: `2024-0${1 + (n % 9)}-2${n % 8}`,
    },
  };
}

// 41 columns (the notes' first table), ~1.2 KB per record.
const TEXT = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod te';
const MID_COLS = [{ id: 'numero', fields: { type: 'Int' } }];
for (const [p, type] of [['t', 'Text'], ['n', 'Numeric'], ['d', 'Date'], ['b', 'Bool']]) {
  for (let i = 0; i < 10; i++) { MID_COLS.push({ id: `${p}${i}`, fields: { type } }); }
}
function midRecord(numero, variant) {
  const fields = {};
  for (let i = 0; i < 10; i++) { fields[`t${i}`] = `${TEXT} ${variant}${i}`; }
  for (let i = 0; i < 10; i++) { fields[`n${i}`] = numero * 1.5 + i + variant; }
  for (let i = 0; i < 10; i++) { fields[`d${i}`] = `2024-0${1 + (i % 9)}-1${variant % 10}`; }
  for (let i = 0; i < 10; i++) { fields[`b${i}`] = (i + variant) % 2 === 0; }
  return { require: { numero }, fields };
}

// ---- helpers ---------------------------------------------------------------------------------

let tableSeq = 0;
async function newTable(srv, name, columns) {
  const r = await srv.api('POST', '/tables', { tables: [{ id: `${name}_${++tableSeq}`, columns }] });
  if (r.status !== 200) { throw new Error(`create table: ${r.status} ${r.text}`); }
  return r.json.tables[0].id;
}

const put = (srv, table, raw) => srv.api('PUT', `/tables/${table}/records`, undefined, { raw, headers: JSON_HEADERS });

// `count` sequential requests of n records; ms per request.
async function series(srv, table, make, n, count, variant) {
  let bytes = 0;
  let total = 0;
  for (let k = 0; k < count; k++) {
    const raw = JSON.stringify({ records: Array.from({ length: n }, (_, i) => make(1 + k * n + i, variant)) });
    bytes = raw.length;
    const t0 = performance.now();
    const r = await put(srv, table, raw);
    total += performance.now() - t0;
    if (r.status !== 200) { return { status: r.status, text: r.text, bytes }; }
  }
  return { msPerReq: total / count, bytes, status: 200 };
}

// What the cost model charges for one write of n new (or updated, all cells changed) records
// of `cells` cells each, and for parsing its body.
function modelMs(s, n, cells, bytes, update) {
  const apply = update ?
    s.writeFixedMs + n * s.writePerUpdatedRowMs + n * (cells - 1) * s.writePerUpdatedCellMs + n * s.writePerUnchangedCellMs :
    s.writeFixedMs + n * s.writePerRowMs + n * cells * s.writePerCellMs;
  return { apply, parse: s.parseMsPerMB * bytes / (1024 * 1024) };
}

const kB = (b) => (b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : `${(b / 1000).toFixed(1)} kB`);
const fmt = (x) => (x === undefined ? '' : x.toFixed(1));

async function sizeTable(srv, s, title, cols, make, plan) {
  console.log(`\n${title}`);
  console.log('| rows/request | body | new rows: ms/request [grist-core] | model (apply + parse) | updates: ms/request | new rows/s |');
  console.log('|---|---|---|---|---|---|');
  for (const [n, count, measured] of plan) {
    const table = await newTable(srv, 'Size', cols);
    const add = await series(srv, table, make, n, count, 1);
    if (add.status !== 200) {
      console.log(`| ${n} | ${kB(add.bytes)} | ${add.status} ${add.text} [${measured}] | | | |`);
      continue;
    }
    const upd = await series(srv, table, make, n, count, 2);
    const m = modelMs(s, n, cols.length, add.bytes, false);
    console.log(`| ${n} | ${kB(add.bytes)} | ${fmt(add.msPerReq)} [${measured}] | ${fmt(m.apply)} + ${fmt(m.parse)} | ` +
      `${fmt(upd.msPerReq)} | ${Math.round(n / (add.msPerReq / 1000))} |`);
  }
}

// Bodies of up to maxBytes, records in order.
function batches(make, from, to, maxBytes) {
  const out = [];
  let cur = [];
  let size = 13;
  for (let i = from; i <= to; i++) {
    const rec = make(i, 1);
    const len = JSON.stringify(rec).length + 1;
    if (cur.length && size + len > maxBytes) { out.push(cur); cur = []; size = 13; }
    cur.push(rec); size += len;
  }
  if (cur.length) { out.push(cur); }
  return out.map((recs) => ({ raw: JSON.stringify({ records: recs }), rows: recs.length }));
}

// The plain loop of the notes: 8,000 dossiers then 11,839 child rows into one document.
async function plainLoop(srv, s, inFlight) {
  const wide = await newTable(srv, 'Dossiers', WIDE_COLS);
  const child = await newTable(srv, 'Lignes', CHILD_COLS);
  const jobs = [
    ...batches(wideRecord, 1, 8000, 900 * 1000).map((b) => ({ ...b, table: wide, cells: WIDE_COLS.length })),
    ...batches(childRecord, 1, 11839, 900 * 1000).map((b) => ({ ...b, table: child, cells: CHILD_COLS.length })),
  ];
  let model = 0;
  for (const j of jobs) { model += modelMs(s, j.rows, j.cells, 0, false).apply; }
  let next = 0;
  let rows = 0;
  let rejected = 0;
  const t0 = performance.now();
  async function lane() {
    while (next < jobs.length) {
      const j = jobs[next++];
      for (;;) {
        const r = await put(srv, j.table, j.raw);
        if (r.status === 200) { rows += j.rows; break; }
        if (r.status === 429) { rejected++; continue; }
        throw new Error(`plain loop: ${r.status} ${r.text}`);
      }
    }
  }
  await Promise.all(Array.from({ length: inFlight }, lane));
  const ms = performance.now() - t0;
  return { ms, rows, requests: jobs.length, rejected, model };
}

async function writers(srv, table, nWriters, nBatches) {
  let next = 0;
  let ok = 0;
  let rejected = 0;
  const t0 = performance.now();
  async function writer() {
    for (;;) {
      const b = next++;
      if (b >= nBatches) { return; }
      const raw = JSON.stringify({ records: Array.from({ length: 100 }, (_, i) => midRecord(1e6 + b * 100 + i, 1)) });
      for (;;) {
        const r = await put(srv, table, raw);
        if (r.status === 200) { ok++; break; }
        if (r.status === 429) { rejected++; continue; }
        throw new Error(`writers: ${r.status} ${r.text}`);
      }
    }
  }
  await Promise.all(Array.from({ length: nWriters }, writer));
  const ms = performance.now() - t0;
  return { ok, rejected, rowsPerSec: (ok * 100) / (ms / 1000) };
}

async function main() {
  const extra = process.argv.slice(2);
  const srv = await startServer(['--doc', 'docA', '--key', 'keyA', ...extra]);
  try {
    const s = (await srv.admin('GET', '/config')).json;
    console.log(`emulator settings: ${JSON.stringify(s)}`);
    console.log('One writer, one request at a time; [grist-core 1.7.17 measured]; "model" is what the cost model ' +
      'charges (apply, on the document) + (parse, overlapped when 2 requests are in flight).');

    await sizeTable(srv, s, 'PUT /records, 61 columns (DS dossiers, ~2.9 KB per row)', WIDE_COLS, wideRecord,
      [[1, 30, '12.6'], [10, 20, '9.5'], [50, 10, '21.6'], [100, 8, '47'], [200, 6, '65'], [400, 1, '413']]);
    await sizeTable(srv, s, 'PUT /records, 5 columns (repetition rows, ~200 B per row)', CHILD_COLS, childRecord,
      [[100, 10, '10'], [200, 8, '13'], [400, 6, '27.8'], [700, 4, '36.6']]);
    await sizeTable(srv, s, 'PUT /records, 41 columns (~1.2 KB per row)', MID_COLS, midRecord,
      [[1, 30, '11-14'], [10, 20, '14-18'], [100, 8, '36-38'], [500, 4, '119-132'], [800, 3, '188'], [1000, 1, '413']]);

    console.log('\nPlain loop: 8,000 dossiers x 61 columns + 11,839 child rows into one document, bodies up to 900 kB');
    console.log('| in flight | requests | seconds | rows/s [grist-core, 2 in flight] | model: document busy (s) | 429s |');
    console.log('|---|---|---|---|---|---|');
    for (const inFlight of [1, 2, 4]) {
      const r = await plainLoop(srv, s, inFlight);
      console.log(`| ${inFlight} | ${r.requests} | ${(r.ms / 1000).toFixed(2)} | ${Math.round(r.rows / (r.ms / 1000))}` +
        `${inFlight === 2 ? ' [5,800-6,560]' : ''} | ${(r.model / 1000).toFixed(2)} [≈3.0] | ${r.rejected} |`);
    }

    console.log('\nConcurrent writers, 100-record batches of 41-column new rows (429 retried at once)');
    console.log('| writers | cap | batches ok | 429s [grist-core] | rows/s [grist-core] |');
    console.log('|---|---|---|---|---|');
    const measured = { 1: '2,460', 2: '2,690', 4: '2,430', 8: '2,320' };
    for (const w of [1, 2, 4, 8]) {
      const table = await newTable(srv, 'W', MID_COLS);
      const res = await writers(srv, table, w, 40);
      console.log(`| ${w} | ${s.maxParallelPerDoc} | ${res.ok} | ${res.rejected} | ${Math.round(res.rowsPerSec)} [${measured[w]}] |`);
    }
    {
      const table = await newTable(srv, 'W', MID_COLS);
      const res = await writers(srv, table, 12, 50);
      console.log(`| 12 | ${s.maxParallelPerDoc} | ${res.ok} | ${res.rejected} [814] | ${Math.round(res.rowsPerSec)} [600] |`);
    }
    const stats = (await srv.admin('GET', '/stats')).json;
    console.log(`\nmaxInFlight on docA: ${stats.docs.docA.maxInFlight}; total 429s: ${stats.sent429}; ` +
      `model time: document busy ${(stats.docs.docA.busyMs / 1000).toFixed(2)} s, parsing ${(stats.parseMs / 1000).toFixed(2)} s`);
  } finally {
    await srv.stop();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
