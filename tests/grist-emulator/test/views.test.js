'use strict';
// Pages, widgets and fields (views.js), POST /apply, POST /sql and the display formula of a Ref
// column (meta.js, formula.js), against a spawned emulator: what grist-core's useractions.py
// makes for AddTable / AddVisibleColumn / SetDisplayFormula.
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('../support/spawn');

const FAST = ['--write-fixed-ms', '0', '--write-per-row-ms', '0', '--write-per-updated-row-ms', '0', '--read-fixed-ms', '0'];

let srv;
test.before(async () => { srv = await startServer(['--doc', 'docA', '--key', 'keyA', ...FAST]); });
test.after(async () => { await srv.stop(); });

async function ok(method, path, body) {
  const r = await srv.api(method, path, body);
  assert.equal(r.status, 200, `${method} ${path}: ${r.text}`);
  return r.json;
}
const records = async (t, filter) =>
  (await ok('GET', `/tables/${t}/records${filter ? `?filter=${encodeURIComponent(JSON.stringify(filter))}` : ''}`)).records;

// {sectionId: [colId...]} of a table's widgets, and the table's metadata record.
async function layout(tableId) {
  const [t] = await records('_grist_Tables', { tableId: [tableId] });
  const cols = new Map((await records('_grist_Tables_column', { parentId: [t.id] })).map((c) => [c.id, c.fields.colId]));
  const sections = await records('_grist_Views_section', { tableRef: [t.id] });
  const out = {};
  for (const s of sections) {
    out[s.id] = (await records('_grist_Views_section_field', { parentId: [s.id] })).map((f) => cols.get(f.fields.colRef));
  }
  return { t, sections, out };
}

test('AddTable: a page with a record widget, the raw section and the record card, each a field per visible column', async () => {
  await ok('POST', '/tables', { tables: [{ id: 'Pets', columns: [{ id: 'name' }, { id: 'age', fields: { type: 'Int' } }] }] });
  const { t, sections, out } = await layout('Pets');
  assert.equal(sections.length, 3);
  const [page, raw, card] = sections;
  assert.equal(t.fields.rawViewSectionRef, raw.id);
  assert.equal(t.fields.recordCardViewSectionRef, card.id);
  assert.equal(page.fields.parentKey, 'record');
  assert.equal(page.fields.parentId, t.fields.primaryViewId, 'the page widget is in the table\'s page');
  assert.equal(raw.fields.parentId, 0, 'the raw section is in no page');
  assert.equal(card.fields.parentKey, 'single');
  for (const s of sections) { assert.deepEqual(out[s.id], ['name', 'age'], 'no manualSort field'); }
  const [view] = await records('_grist_Views', { id: [t.fields.primaryViewId] });
  assert.equal(view.fields.name, 'Pets');
  const tables = (await ok('GET', '/tables')).tables.find((x) => x.id === 'Pets');
  assert.equal(tables.fields.rawViewSectionRef, raw.id, 'GET /tables gives the same references');
});

test('POST /columns (AddVisibleColumn) adds a field to every widget; removing page fields keeps raw ones; raw refused', async () => {
  await ok('POST', '/tables/Pets/columns', { columns: [{ id: 'tech', fields: { type: 'Text' } }] });
  let { t, sections, out } = await layout('Pets');
  for (const s of sections) { assert.deepEqual(out[s.id], ['name', 'age', 'tech']); }
  const [page, raw, card] = sections;
  const techRef = (await records('_grist_Tables_column', { parentId: [t.id], colId: ['tech'] }))[0].id;
  const techFields = await records('_grist_Views_section_field', { colRef: [techRef] });
  assert.equal(techFields.length, 3);
  const rawField = techFields.find((f) => f.fields.parentId === raw.id);
  let r = await srv.api('POST', '/apply', [['BulkRemoveRecord', '_grist_Views_section_field', techFields.map((f) => f.id)]]);
  assert.equal(r.status, 400);
  assert.match(r.json.error, /Cannot remove raw view section field/);
  ({ out } = await layout('Pets'));
  assert.deepEqual(out[page.id], ['name', 'age', 'tech'], 'a refused bundle changes nothing');
  const pageAndCard = techFields.filter((f) => f.id !== rawField.id).map((f) => f.id);
  r = await ok('POST', '/apply', [['BulkRemoveRecord', '_grist_Views_section_field', pageAndCard]]);
  assert.deepEqual(r.retValues, [null]);
  ({ out } = await layout('Pets'));
  assert.deepEqual(out[page.id], ['name', 'age']);
  assert.deepEqual(out[card.id], ['name', 'age']);
  assert.deepEqual(out[raw.id], ['name', 'age', 'tech'], 'raw data keeps every column');
  await ok('DELETE', '/tables/Pets/columns/tech');
  assert.equal((await records('_grist_Views_section_field', { colRef: [techRef] })).length, 0, 'fields go with their column');
});

test('POST /sql: joins over the metadata tables, args, UNION ALL; errors as SQLite', async () => {
  const sql = 'SELECT f.id AS id, c.colId AS col FROM _grist_Views_section_field f ' +
    'JOIN _grist_Views_section AS s ON s.id = f.parentId JOIN _grist_Tables t ON t.id = s.tableRef ' +
    'JOIN _grist_Tables_column c ON c.id = f.colRef WHERE s.id <> t.rawViewSectionRef AND t.tableId = ? ' +
    "AND c.colId IN ('age', ?) UNION ALL SELECT c.id, 'x' FROM _grist_Tables_column c WHERE c.colId = 'name'";
  const r = await ok('POST', '/sql', { sql, args: ['Pets', 'nope'] });
  assert.deepEqual(r.records.map((x) => x.fields.col), ['age', 'age', 'x']);
  const bad = await srv.api('POST', '/sql', { sql: 'SELECT x FROM Nope' });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error, /no such table: Nope/);
  const rows = await ok('POST', '/sql', { sql: 'select * from Pets' });
  assert.deepEqual(rows.records, []);
});

test('Ref display: visibleCol + SetDisplayFormula make gristHelper_Display, computed from the Ref formula', async () => {
  await ok('POST', '/tables', { tables: [
    { id: 'D', columns: [{ id: 'numero', fields: { type: 'Int' } }] },
    { id: 'C', columns: [{ id: 'n', fields: { type: 'Int' } },
      { id: 'dossier', fields: { type: 'Ref:D', isFormula: true, formula: 'D.lookupOne(numero=$n)' } }] }] });
  await ok('POST', '/tables/D/records', { records: [{ fields: { numero: 41 } }, { fields: { numero: 42 } }] });
  await ok('POST', '/tables/C/records', { records: [{ fields: { n: 42 } }, { fields: { n: 7 } }] });
  const numeroRef = (await ok('GET', '/tables/D/columns')).columns.find((c) => c.id === 'numero').fields.colRef;
  const r = await ok('POST', '/apply', [['ModifyColumn', 'C', 'dossier', { visibleCol: numeroRef }],
    ['SetDisplayFormula', 'C', null, 'dossier', '$dossier.numero']]);
  assert.deepEqual(r.retValues, [null, null]);
  const cols = (await ok('GET', '/tables/C/columns?hidden=1')).columns;
  const dossier = cols.find((c) => c.id === 'dossier');
  const helper = cols.find((c) => c.id === 'gristHelper_Display');
  assert.equal(dossier.fields.visibleCol, numeroRef);
  assert.equal(dossier.fields.displayCol, helper.fields.colRef);
  assert.equal(helper.fields.formula, '$dossier.numero');
  assert.ok(!(await ok('GET', '/tables/C/columns')).columns.some((c) => c.id.startsWith('gristHelper')));
  const shown = (await ok('GET', '/tables/C/records?hidden=1')).records.map((x) => [x.fields.dossier, x.fields.gristHelper_Display]);
  assert.deepEqual(shown, [[2, 42], [0, null]], 'the Ref holds the row id, its display the number');
  const { out } = await layout('C');
  for (const f of Object.values(out)) { assert.ok(!f.includes(undefined) && !f.some((c) => c.startsWith('gristHelper')), 'the helper has no field'); }
  // The same display formula again reuses the helper (the only user: its formula is updated).
  await ok('POST', '/apply', [['SetDisplayFormula', 'C', null, 'dossier', '$dossier.numero']]);
  assert.equal((await ok('GET', '/tables/C/columns?hidden=1')).columns.filter((c) => c.id.startsWith('gristHelper')).length, 1);
  const unknown = await srv.api('POST', '/apply', [['AddEmptyTable', null]]);
  assert.equal(unknown.status, 400);
});
