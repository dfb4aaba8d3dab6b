'use strict';
// The REST endpoints against a real spawned emulator (fast cost model).
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('../support/spawn');

const FAST = ['--write-fixed-ms', '0', '--write-per-row-ms', '0', '--write-per-updated-row-ms', '0', '--read-fixed-ms', '0'];

let srv;
test.before(async () => {
  srv = await startServer(['--doc', 'docA', '--key', 'keyA', '--doc', 'docB', '--key', 'keyB', ...FAST]);
});
test.after(async () => {
  const code = await srv.stop();
  assert.equal(code, 0, 'SIGTERM exits 0');
});

async function makeTable(id, columns) {
  const r = await srv.api('POST', '/tables', { tables: [{ id, columns }] });
  assert.equal(r.status, 200, r.text);
  return r.json.tables[0].id;
}

test('prints the listening line', () => {
  assert.match(srv.output().stdout, /^grist-emulator listening on http:\/\/127\.0\.0\.1:\d+\n$/);
});

test('tables and columns: creation with Grist id normalisation and de-duplication', async () => {
  const r = await srv.api('POST', '/tables', {
    tables: [
      { id: 'dossiers démarche', columns: [
        { id: 'numero', fields: { type: 'Int', label: 'Numéro' } },
        { id: 'état', fields: { type: 'Choice', widgetOptions: '{"choices":["a","b"]}' } },
        { id: 'id', fields: { type: 'Text' } },
        { id: '2e champ', fields: { type: 'Text' } },
        { id: 'manualSort', fields: { type: 'Text' } },
        { id: 'Numero', fields: { type: 'Text' } },
      ] },
      { id: 'Dossiers_demarche', columns: [{ id: 'x' }] },
      { id: 'lower', columns: [{ id: 'x' }] },
    ],
  });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { tables: [{ id: 'Dossiers_demarche' }, { id: 'Dossiers_demarche2' }, { id: 'Lower' }] });

  const cols = await srv.api('GET', '/tables/Dossiers_demarche/columns');
  assert.equal(cols.status, 200);
  assert.deepEqual(cols.json.columns.map((c) => c.id), ['numero', 'etat', 'id2', 'c2e_champ', 'manualSort2', 'Numero2']);
  assert.equal(cols.json.columns[0].fields.label, 'Numéro');
  assert.equal(cols.json.columns[0].fields.type, 'Int');
  assert.equal(cols.json.columns[1].fields.widgetOptions, '{"choices":["a","b"]}');
  const hidden = await srv.api('GET', '/tables/Dossiers_demarche/columns?hidden=1');
  assert.equal(hidden.json.columns[0].id, 'manualSort');

  const tables = await srv.api('GET', '/tables');
  assert.deepEqual(tables.json.tables.map((t) => t.id), ['Dossiers_demarche', 'Dossiers_demarche2', 'Lower']);

  // POST columns: ids picked against existing ones; returns the ids created.
  const add = await srv.api('POST', '/tables/Lower/columns', { columns: [
    { id: 'x', fields: { type: 'Numeric' } }, { id: 'Date dépôt', fields: { type: 'Date' } }, { fields: { label: 'Sans id' } },
  ] });
  assert.equal(add.status, 200, add.text);
  assert.deepEqual(add.json, { columns: [{ id: 'x2' }, { id: 'Date_depot' }, { id: 'Sans_id' }] });

  // PATCH: unknown column -> 404; type change converts; a label change renames the column
  // (Grist keeps colId in sync with the label unless untieColIdFromLabel).
  let p = await srv.api('PATCH', '/tables/Lower/columns', { columns: [{ id: 'nope', fields: { type: 'Text' } }] });
  assert.equal(p.status, 404);
  assert.deepEqual(p.json, { error: 'Column not found "nope"' });
  p = await srv.api('PATCH', '/tables/Lower/columns', { columns: [{ id: 'x2', fields: { label: 'Montant €', type: 'Text' } }] });
  assert.equal(p.status, 200, p.text);
  let ids = (await srv.api('GET', '/tables/Lower/columns')).json.columns.map((c) => c.id);
  assert.deepEqual(ids, ['x', 'Montant_', 'Date_depot', 'Sans_id']);
  p = await srv.api('PATCH', '/tables/Lower/columns', { columns: [{ id: 'Montant_', fields: { label: 'Autre', untieColIdFromLabel: true } }] });
  ids = (await srv.api('GET', '/tables/Lower/columns')).json.columns.map((c) => c.id);
  assert.deepEqual(ids, ['x', 'Montant_', 'Date_depot', 'Sans_id']);

  // PUT columns: add-or-update, noadd, noupdate, replaceall.
  p = await srv.api('PUT', '/tables/Lower/columns?noadd=1', { columns: [{ id: 'new1', fields: { type: 'Text' } }] });
  assert.equal(p.status, 200);
  ids = (await srv.api('GET', '/tables/Lower/columns')).json.columns.map((c) => c.id);
  assert.ok(!ids.includes('new1'));
  p = await srv.api('PUT', '/tables/Lower/columns?noupdate=1', { columns: [{ id: 'x', fields: { type: 'Bool' } }, { id: 'new1', fields: { type: 'Int' } }] });
  let cols2 = (await srv.api('GET', '/tables/Lower/columns')).json.columns;
  assert.equal(cols2.find((c) => c.id === 'x').fields.type, 'Any');
  assert.equal(cols2.find((c) => c.id === 'new1').fields.type, 'Int');
  p = await srv.api('PUT', '/tables/Lower/columns?replaceall=1', { columns: [{ id: 'x', fields: { type: 'Numeric' } }, { id: 'y', fields: { type: 'Text' } }] });
  assert.equal(p.status, 200, p.text);
  cols2 = (await srv.api('GET', '/tables/Lower/columns')).json.columns;
  assert.deepEqual(cols2.map((c) => [c.id, c.fields.type]), [['x', 'Numeric'], ['y', 'Text']]);

  // Unknown table / bad type / bad payload.
  p = await srv.api('GET', '/tables/Nope/columns');
  assert.deepEqual([p.status, p.json], [404, { error: 'Table not found "Nope"' }]);
  p = await srv.api('POST', '/tables', { tables: [{ id: 'Bad', columns: [{ id: 'a', fields: { type: 'Integer' } }] }] });
  assert.equal(p.status, 400);
  p = await srv.api('POST', '/tables', { tables: [{ id: 'Bad', columns: [] }] });
  assert.equal(p.status, 400);
  assert.equal(p.json.error, 'Invalid payload');
  assert.equal((await srv.api('GET', '/tables')).json.tables.length, 3, 'nothing created by failed requests');
});

test('records: POST, GET with filter/sort/limit, PATCH same-fields rule, delete', async () => {
  const t = await makeTable('Rec', [
    { id: 'num', fields: { type: 'Int' } }, { id: 'name', fields: { type: 'Text' } },
    { id: 'tags', fields: { type: 'ChoiceList' } }, { id: 'ok', fields: { type: 'Bool' } },
  ]);
  let r = await srv.api('POST', `/tables/${t}/records`, { records: [
    { fields: { num: 3, name: 'c', tags: ['L', 'x', 'y'], ok: true } },
    { fields: { num: 1, name: 'a' } },
    { fields: { num: 2, name: 'b' } },
    {},
  ] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { records: [{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }] });

  r = await srv.api('GET', `/tables/${t}/records`);
  assert.deepEqual(r.json.records[0], { id: 1, fields: { num: 3, name: 'c', tags: ['L', 'x', 'y'], ok: true } });
  // Fields missing from one record of a multi-record POST are written as null (Grist's
  // convertToBulkColValues); fields absent from all records get the column default.
  assert.deepEqual(r.json.records[1].fields, { num: 1, name: 'a', tags: null, ok: false });
  assert.deepEqual(r.json.records[3].fields, { num: null, name: null, tags: null, ok: false });

  r = await srv.api('GET', `/tables/${t}/records?filter=${encodeURIComponent('{"num":[1,2]}')}&sort=-num`);
  assert.deepEqual(r.json.records.map((x) => x.id), [3, 2]);
  r = await srv.api('GET', `/tables/${t}/records?sort=name&limit=2`);
  assert.deepEqual(r.json.records.map((x) => x.id), [4, 2]);
  r = await srv.api('GET', `/tables/${t}/records?filter=${encodeURIComponent('{"num":1}')}`);
  assert.deepEqual([r.status, r.json], [400, { error: 'Invalid query: filter values must be arrays' }]);

  // PATCH: all records must carry the same set of field keys.
  r = await srv.api('PATCH', `/tables/${t}/records`, { records: [{ id: 1, fields: { name: 'A' } }, { id: 2, fields: { name: 'B', num: 5 } }] });
  assert.deepEqual([r.status, r.json], [400, { error: 'PATCH requires all records to have same fields' }]);
  r = await srv.api('PATCH', `/tables/${t}/records`, { records: [{ id: 1, fields: { name: 'A', num: 10 } }, { id: 2, fields: { num: 20, name: 'B' } }] });
  assert.deepEqual([r.status, r.json], [200, null]);
  r = await srv.api('PATCH', `/tables/${t}/records`, { records: [{ id: 99, fields: { name: 'Z' } }] });
  assert.deepEqual([r.status, r.json], [400, { error: 'Invalid row id 99' }]);
  r = await srv.api('PATCH', `/tables/${t}/records`, { records: [{ id: 1, fields: { nope: 'Z' } }] });
  assert.deepEqual([r.status, r.json], [400, { error: 'Invalid column "nope"' }]);
  r = await srv.api('POST', `/tables/${t}/records`, { records: [{ fields: { name: 'ok' } }, { fields: { nope: 1 } }] });
  assert.deepEqual([r.status, r.json], [400, { error: 'Invalid column "nope"' }]);
  r = await srv.api('POST', `/tables/${t}/records`, { records: [] });
  assert.equal(r.status, 400);
  assert.equal(r.json.error, 'Invalid payload');

  // Deletes: bare JSON array of row ids, both endpoints.
  r = await srv.api('POST', `/tables/${t}/records/delete`, [2]);
  assert.deepEqual([r.status, r.json], [200, null]);
  r = await srv.api('POST', `/tables/${t}/data/delete`, [3]);
  assert.deepEqual([r.status, r.json], [200, null]);
  r = await srv.api('POST', `/tables/${t}/records/delete`, [3]);
  assert.deepEqual([r.status, r.json], [400, { error: 'Invalid row id 3' }]);
  r = await srv.api('GET', `/tables/${t}/records`);
  assert.deepEqual(r.json.records.map((x) => [x.id, x.fields.name, x.fields.num]), [[1, 'A', 10], [4, null, null]]);
  // Row ids: Grist gives max(existing id) + 1.
  r = await srv.api('POST', `/tables/${t}/records`, { records: [{ fields: { name: 'e' } }] });
  assert.deepEqual(r.json, { records: [{ id: 5 }] });
  r = await srv.api('POST', `/tables/${t}/records/delete`, [5]);
  r = await srv.api('POST', `/tables/${t}/records`, { records: [{ fields: { name: 'f' } }] });
  assert.deepEqual(r.json, { records: [{ id: 5 }] }, 'the id of a deleted last row is reused, as in Grist');
});

test('records: PUT upsert with require, onmany, noadd, noupdate, allow_empty_require', async () => {
  const t = await makeTable('Up', [{ id: 'numero', fields: { type: 'Int' } }, { id: 'etat', fields: { type: 'Text' } }, { id: 'k', fields: { type: 'Text' } }]);
  let r = await srv.api('PUT', `/tables/${t}/records`, { records: [
    { require: { numero: 1 }, fields: { etat: 'a' } },
    { require: { numero: 2 }, fields: { etat: 'b' } },
  ] });
  // grist-core 1.7.17 answers with the row ids (TableOperationsImpl.upsert).
  assert.deepEqual([r.status, r.json], [200, { recordIds: [[1], [2]], addRecordIds: [1, 2], updateRecordIds: [] }]);
  r = await srv.api('PUT', `/tables/${t}/records`, { records: [
    { require: { numero: 2 }, fields: { etat: 'B' } },
    { require: { numero: 3 }, fields: { etat: 'c' } },
  ] });
  assert.deepEqual([r.status, r.json], [200, { recordIds: [[2], [3]], addRecordIds: [3], updateRecordIds: [[2]] }]);
  let rows = (await srv.api('GET', `/tables/${t}/records`)).json.records;
  assert.deepEqual(rows.map((x) => [x.id, x.fields.numero, x.fields.etat]), [[1, 1, 'a'], [2, 2, 'B'], [3, 3, 'c']]);

  // Several matches: first (default) / none / all.
  await srv.api('POST', `/tables/${t}/records`, { records: [{ fields: { numero: 9, k: 'dup' } }, { fields: { numero: 9, k: 'dup' } }] });
  r = await srv.api('PUT', `/tables/${t}/records`, { records: [{ require: { k: 'dup' }, fields: { etat: 'first' } }] });
  rows = (await srv.api('GET', `/tables/${t}/records?filter=${encodeURIComponent('{"k":["dup"]}')}`)).json.records;
  assert.deepEqual(rows.map((x) => x.fields.etat), ['first', '']);
  await srv.api('PUT', `/tables/${t}/records?onmany=none`, { records: [{ require: { k: 'dup' }, fields: { etat: 'none' } }] });
  rows = (await srv.api('GET', `/tables/${t}/records?filter=${encodeURIComponent('{"k":["dup"]}')}`)).json.records;
  assert.deepEqual(rows.map((x) => x.fields.etat), ['first', '']);
  await srv.api('PUT', `/tables/${t}/records?onmany=all`, { records: [{ require: { k: 'dup' }, fields: { etat: 'all' } }] });
  rows = (await srv.api('GET', `/tables/${t}/records?filter=${encodeURIComponent('{"k":["dup"]}')}`)).json.records;
  assert.deepEqual(rows.map((x) => x.fields.etat), ['all', 'all']);
  r = await srv.api('PUT', `/tables/${t}/records?onmany=some`, { records: [{ require: { k: 'dup' } }] });
  assert.equal(r.status, 400);

  // noadd / noupdate.
  await srv.api('PUT', `/tables/${t}/records?noadd=1`, { records: [{ require: { numero: 1 }, fields: { etat: 'A' } }, { require: { numero: 50 }, fields: { etat: 'x' } }] });
  await srv.api('PUT', `/tables/${t}/records?noupdate=1`, { records: [{ require: { numero: 2 }, fields: { etat: 'zz' } }, { require: { numero: 51 }, fields: { etat: 'y' } }] });
  rows = (await srv.api('GET', `/tables/${t}/records?sort=numero`)).json.records;
  const byNum = Object.fromEntries(rows.map((x) => [x.fields.numero, x.fields.etat]));
  assert.equal(byNum[1], 'A');
  assert.equal(byNum[50], undefined);
  assert.equal(byNum[2], 'B');
  assert.equal(byNum[51], 'y');

  // Empty require and duplicate require values are errors; nothing of the request applies.
  const before = (await srv.api('GET', `/tables/${t}/records`)).json.records.length;
  r = await srv.api('PUT', `/tables/${t}/records`, { records: [{ require: {}, fields: { etat: 'q' } }] });
  assert.deepEqual([r.status, r.json], [400, { error: "Error manipulating data: [Sandbox] ValueError require is empty but allow_empty_require isn't set" }]);
  r = await srv.api('PUT', `/tables/${t}/records`, { records: [
    { require: { numero: 100 }, fields: { etat: 'new' } },
    { require: { numero: 7 }, fields: { k: 'other-shape' } },
    { require: { numero: 7 }, fields: { k: 'other-shape2' } },
  ] });
  assert.deepEqual([r.status, r.json], [400, { error: 'Error manipulating data: [Sandbox] ValueError require values must be unique' }]);
  assert.equal((await srv.api('GET', `/tables/${t}/records`)).json.records.length, before, 'rolled back');
  // An empty require matches every record; onmany=first (default) updates only the first.
  r = await srv.api('PUT', `/tables/${t}/records?allow_empty_require=1`, { records: [{ require: {}, fields: { k: 'first' } }] });
  assert.equal(r.status, 200);
  rows = (await srv.api('GET', `/tables/${t}/records`)).json.records;
  assert.deepEqual(rows.filter((x) => x.fields.k === 'first').map((x) => x.id), [1]);
  r = await srv.api('PUT', `/tables/${t}/records?allow_empty_require=1&onmany=all`, { records: [{ require: {}, fields: { k: 'everyone' } }] });
  rows = (await srv.api('GET', `/tables/${t}/records`)).json.records;
  assert.ok(rows.every((x) => x.fields.k === 'everyone'));

  // Records of different shapes in one request are grouped, later groups see earlier adds.
  r = await srv.api('PUT', `/tables/${t}/records`, { records: [
    { require: { numero: 200 }, fields: { etat: 'p' } },
    { require: { numero: 200 } , fields: { k: 'q' } },
  ] });
  rows = (await srv.api('GET', `/tables/${t}/records?filter=${encodeURIComponent('{"numero":[200]}')}`)).json.records;
  assert.deepEqual(rows.map((x) => [x.fields.etat, x.fields.k]), [['p', 'q']]);
});

test('cell parsing: ISO dates to epoch seconds, parsing on by default, noparse', async () => {
  const t = await makeTable('Cells', [
    { id: 'd', fields: { type: 'Date', widgetOptions: '{"dateFormat":"DD/MM/YYYY"}' } },
    { id: 'dt', fields: { type: 'DateTime:Europe/Paris' } },
    { id: 'n', fields: { type: 'Numeric' } },
    { id: 'i', fields: { type: 'Int' } },
    { id: 'b', fields: { type: 'Bool' } },
    { id: 'cl', fields: { type: 'ChoiceList' } },
    { id: 'att', fields: { type: 'Attachments' } },
  ]);
  const rec = { d: '2024-01-15', dt: '2024-01-15T10:00:00', n: '1,234.5', i: '42', b: 'true', cl: ['L', 'a', 'b'], att: ['L', 1, 2] };
  await srv.api('POST', `/tables/${t}/records`, { records: [{ fields: rec }, { fields: { ...rec, d: '15/01/2024', n: 'abc' } }] });
  await srv.api('POST', `/tables/${t}/records?noparse=1`, { records: [{ fields: { ...rec, d: '15/01/2024' } }, { fields: { ...rec } }] });
  const rows = (await srv.api('GET', `/tables/${t}/records`)).json.records.map((r) => r.fields);
  // Parsing on: ISO date -> UTC midnight in seconds; naive DateTime in the column's zone.
  assert.equal(rows[0].d, 1705276800);
  assert.equal(rows[0].dt, 1705309200);          // 10:00 Paris = 09:00 UTC
  assert.equal(rows[0].n, 1234.5);
  assert.equal(rows[0].i, 42);
  assert.equal(rows[0].b, true);
  assert.deepEqual(rows[0].cl, ['L', 'a', 'b']);
  assert.deepEqual(rows[0].att, ['L', 1, 2]);
  // The column's date format is used when parsing; unparsable text stays text (AltText).
  assert.equal(rows[1].d, 1705276800);
  assert.equal(rows[1].n, 'abc');
  // noparse: formatted strings stay strings...
  assert.equal(rows[2].d, '15/01/2024');
  assert.equal(rows[2].n, '1,234.5');
  // ...but the data engine still converts what it can (ISO dates, plain numbers, booleans).
  assert.equal(rows[3].d, 1705276800);
  assert.equal(rows[3].i, 42);
  assert.equal(rows[3].b, true);
});

test('auth: 401 for a bad key, 403 without access, 404 for an unknown document', async () => {
  let r = await srv.api('GET', '/tables', undefined, { key: 'wrong' });
  assert.deepEqual([r.status, r.json], [401, { error: 'Bad request: invalid API key' }]);
  r = await srv.request('GET', '/api/docs/docA/tables', { headers: { Authorization: 'Basic xyz' } });
  assert.equal(r.status, 401);
  r = await srv.api('GET', '/tables', undefined, { key: 'keyB' });
  assert.deepEqual([r.status, r.json], [403, { error: 'No view access' }]);
  r = await srv.api('GET', '/tables', undefined, { key: null });
  assert.deepEqual([r.status, r.json], [403, { error: 'No view access' }], 'anonymous, as in Grist');
  r = await srv.api('GET', '/tables', undefined, { doc: 'nodoc' });
  assert.deepEqual([r.status, r.json], [404, { error: 'document not found' }]);
  // A viewer key can read but not write.
  await srv.admin('POST', '/keys', { key: 'viewerA', docs: [{ id: 'docA', access: 'viewers' }] });
  r = await srv.api('GET', '/tables', undefined, { key: 'viewerA' });
  assert.equal(r.status, 200);
  r = await srv.api('POST', '/tables', { tables: [{ id: 'V', columns: [{ id: 'a' }] }] }, { key: 'viewerA' });
  assert.deepEqual([r.status, r.json], [403, { error: 'No write access' }]);
});

test('body limit: 1 MB (1048576 bytes); just under passes, just over is 413 and nothing applied', async () => {
  const t = await makeTable('Big', [{ id: 'txt', fields: { type: 'Text' } }]);
  const make = (total) => {
    const shell = JSON.stringify({ records: [{ fields: { txt: '' } }] });
    return shell.replace('""', JSON.stringify('x'.repeat(total - shell.length)));
  };
  const under = make(1048576);
  assert.equal(Buffer.byteLength(under), 1048576);
  let r = await srv.api('POST', `/tables/${t}/records`, undefined, { raw: under, headers: { 'Content-Type': 'application/json' } });
  assert.equal(r.status, 200, r.text);
  const over = make(1048577);
  r = await srv.api('POST', `/tables/${t}/records`, undefined, { raw: over, headers: { 'Content-Type': 'application/json' } });
  assert.deepEqual([r.status, r.json], [413, { error: 'request entity too large' }]);
  const rows = (await srv.api('GET', `/tables/${t}/records`)).json.records;
  assert.equal(rows.length, 1, 'the oversize request applied nothing');
  // The connection stays usable.
  r = await srv.api('GET', '/tables');
  assert.equal(r.status, 200);
  // Malformed JSON is a 400; a body without Content-Type: application/json is ignored ({}).
  r = await srv.api('POST', `/tables/${t}/records`, undefined, { raw: '{"records":', headers: { 'Content-Type': 'application/json' } });
  assert.equal(r.status, 400);
  r = await srv.api('POST', `/tables/${t}/records`, undefined, { raw: JSON.stringify({ records: [{}] }), headers: { 'Content-Type': 'text/plain' } });
  assert.equal(r.status, 400);
  assert.equal(r.json.error, 'Invalid payload');
});

test('admin dump: JSON and CSV with quoting', async () => {
  const t = await makeTable('Dump', [{ id: 'a', fields: { type: 'Text' } }, { id: 'n', fields: { type: 'Numeric' } }, { id: 'l', fields: { type: 'ChoiceList' } }]);
  await srv.api('POST', `/tables/${t}/records`, { records: [
    { fields: { a: 'plain', n: 1.5, l: ['L', 'x'] } },
    { fields: { a: 'with, comma "and" quotes\nnewline', n: null } },
  ] });
  let r = await srv.admin('GET', `/docs/docA/tables/${t}/dump?format=json`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.columns, ['id', 'a', 'n', 'l']);
  assert.deepEqual(r.json.rows[0], { id: 1, a: 'plain', n: 1.5, l: ['L', 'x'] });
  r = await srv.admin('GET', `/docs/docA/tables/${t}/dump?format=csv`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/csv/);
  assert.equal(r.text, 'id,a,n,l\r\n1,plain,1.5,"[""L"",""x""]"\r\n2,"with, comma ""and"" quotes\nnewline",,\r\n');
  r = await srv.admin('GET', `/docs/docA/tables/${t}/columns`);
  assert.deepEqual(r.json.columns.map((c) => c.id), ['manualSort', 'a', 'n', 'l']);
  assert.equal(r.json.columns[1].fields.type, 'Text');
});

test('attachments: multipart upload returns ids; metadata; download', async () => {
  const fd = new FormData();
  fd.append('upload', new Blob(['hello']), 'hello.txt');
  fd.append('upload', new Blob([Buffer.from([1, 2, 3])]), 'piece jointe.pdf');
  let res = await fetch(`${srv.base}/api/docs/docA/attachments`, { method: 'POST', headers: { Authorization: 'Bearer keyA' }, body: fd });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), [1, 2]);
  const fd2 = new FormData();
  fd2.append('upload', new Blob(['x']), 'x.txt');
  res = await fetch(`${srv.base}/api/docs/docA/attachments`, { method: 'POST', headers: { Authorization: 'Bearer keyA' }, body: fd2 });
  assert.deepEqual(await res.json(), [3]);
  let r = await srv.api('GET', '/attachments');
  assert.deepEqual(r.json.records.map((x) => [x.id, x.fields.fileName, x.fields.fileSize]), [[1, 'hello.txt', 5], [2, 'piece jointe.pdf', 3], [3, 'x.txt', 1]]);
  r = await srv.api('GET', '/attachments/1/download');
  assert.equal(r.text, 'hello');
  // DocApi.ts: type from the extension, attachment disposition, private cache, sandbox CSP.
  assert.equal(r.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.equal(r.headers.get('content-disposition'), 'attachment; filename="hello.txt"');
  assert.equal(r.headers.get('cache-control'), 'private, max-age=3600');
  assert.equal(r.headers.get('content-security-policy'), "sandbox; default-src 'none'");
  r = await srv.api('GET', '/attachments/2/download?inline=1');
  assert.equal(r.headers.get('content-type'), 'application/pdf');
  assert.equal(r.headers.get('content-disposition'), 'inline; filename="piece jointe.pdf"');
  r = await srv.api('GET', '/attachments/2');
  assert.deepEqual(Object.keys(r.json), ['fileName', 'fileSize', 'timeUploaded']);
  r = await srv.api('GET', '/attachments/99/download');
  assert.equal(r.status, 404);
  // Only the files of the field `upload` are taken (uploads.ts); none -> 400 missing payload.
  const fd3 = new FormData();
  fd3.append('file', new Blob(['y']), 'y.txt');
  res = await fetch(`${srv.base}/api/docs/docA/attachments`, { method: 'POST', headers: { Authorization: 'Bearer keyA' }, body: fd3 });
  assert.deepEqual([res.status, await res.json()], [400, { error: 'missing payload' }]);
  // Written into an Attachments cell as ["L", id, ...].
  const t = await makeTable('Att', [{ id: 'pj', fields: { type: 'Attachments' } }]);
  await srv.api('POST', `/tables/${t}/records`, { records: [{ fields: { pj: ['L', 1, 2] } }] });
  r = await srv.api('GET', `/tables/${t}/records`);
  assert.deepEqual(r.json.records[0].fields.pj, ['L', 1, 2]);
  r = await srv.api('POST', '/attachments', { x: 1 });
  assert.equal(r.status, 400);
});

test('stats count requests by kind and status', async () => {
  await srv.admin('POST', '/stats/reset');
  await srv.api('GET', '/tables');
  await srv.api('GET', '/tables', undefined, { key: 'wrong' });
  const s = (await srv.admin('GET', '/stats')).json;
  assert.equal(s.requests.total, 2);
  assert.equal(s.requests.byKind['GET tables'], 2);
  assert.equal(s.requests.byStatus['200'], 1);
  assert.equal(s.requests.byStatus['401'], 1);
  assert.equal(s.docs.docA.requests, 1, 'the 401 is not attributed to the document (key checked first)');
  assert.ok(s.docs.docA.tables.Dossiers_demarche !== undefined);
});
