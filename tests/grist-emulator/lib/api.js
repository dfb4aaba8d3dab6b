'use strict';
// The /api/docs/{doc}/... endpoints, following app/server/lib/DocApi.ts.
//
// Order of checks for every request, as in grist-core's middleware chain:
//   body parsing (express.json, 1 MB: 413 / 400)  ->  API key (401)  ->  document (404)
//   ->  access (403)  ->  payload validation of some endpoints (400)  ->  per-document
//   throttle (429)  ->  handler (reads: readFixedMs; writes: FIFO write queue).
// The throttle counts a request from its admission until its response has been written.

const Busboy = require('busboy');
const types = require('./types');
const { Tx } = require('./store');
const meta = require('./meta');
const { runSql } = require('./sql');
const { cellValue } = require('./formula');
const { ApiError } = require('./errors');
const { sendJson, sendHtml, sendError, readJsonRequest, isMultipart, drain } = require('./http');

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const now = () => performance.now();

function isAffirmative(v) {
  return v !== undefined && v !== null && ['1', 'on', 'y', 'yes', 'true'].includes(String(v).toLowerCase());
}
function isObject(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }

function invalidPayload(msg) {
  return new ApiError(400, 'Invalid payload', { userError: `Error: ${msg}` });
}

// ---- payload validation (ts-interface-checker in Grist; messages approximated) -----------

function checkNonEmptyArray(body, key) {
  if (!isObject(body)) { throw invalidPayload('body is not an object'); }
  if (body[key] === undefined) { throw invalidPayload(`body.${key} is missing`); }
  if (!Array.isArray(body[key])) { throw invalidPayload(`body.${key} is not an array`); }
  if (body[key].length === 0) { throw invalidPayload(`body.${key} is not a non-empty array`); }
}
function checkFieldsObj(v, path, required) {
  if (v === undefined) { if (required) { throw invalidPayload(`${path} is missing`); } return; }
  if (!isObject(v)) { throw invalidPayload(`${path} is not an object`); }
}

const validators = {
  RecordsPost(body) {
    checkNonEmptyArray(body, 'records');
    body.records.forEach((r, i) => {
      if (!isObject(r)) { throw invalidPayload(`body.records[${i}] is not an object`); }
      checkFieldsObj(r.fields, `body.records[${i}].fields`, false);
    });
  },
  RecordsPatch(body) {
    checkNonEmptyArray(body, 'records');
    body.records.forEach((r, i) => {
      if (!isObject(r)) { throw invalidPayload(`body.records[${i}] is not an object`); }
      if (r.id === undefined) { throw invalidPayload(`body.records[${i}].id is missing`); }
      if (typeof r.id !== 'number') { throw invalidPayload(`body.records[${i}].id is not a number`); }
      checkFieldsObj(r.fields, `body.records[${i}].fields`, true);
    });
  },
  RecordsPut(body) {
    checkNonEmptyArray(body, 'records');
    body.records.forEach((r, i) => {
      if (!isObject(r)) { throw invalidPayload(`body.records[${i}] is not an object`); }
      checkFieldsObj(r.require, `body.records[${i}].require`, true);
      if (r.require.id !== undefined && typeof r.require.id !== 'number') {
        throw invalidPayload(`body.records[${i}].require.id is not a number`);
      }
      checkFieldsObj(r.fields, `body.records[${i}].fields`, false);
    });
  },
  ColumnsPost(body, what = 'columns') {
    checkNonEmptyArray(body, what);
    body[what].forEach((c, i) => {
      if (!isObject(c)) { throw invalidPayload(`body.${what}[${i}] is not an object`); }
      if (c.id !== undefined && typeof c.id !== 'string') { throw invalidPayload(`body.${what}[${i}].id is not a string`); }
      checkFieldsObj(c.fields, `body.${what}[${i}].fields`, false);
    });
  },
  ColumnsPatch(body) {
    checkNonEmptyArray(body, 'columns');
    body.columns.forEach((c, i) => {
      if (!isObject(c)) { throw invalidPayload(`body.columns[${i}] is not an object`); }
      if (typeof c.id !== 'string') { throw invalidPayload(`body.columns[${i}].id is ${c.id === undefined ? 'missing' : 'not a string'}`); }
      checkFieldsObj(c.fields, `body.columns[${i}].fields`, true);
    });
  },
  TablesPost(body) {
    checkNonEmptyArray(body, 'tables');
    body.tables.forEach((t, i) => {
      if (!isObject(t)) { throw invalidPayload(`body.tables[${i}] is not an object`); }
      if (t.id !== undefined && typeof t.id !== 'string') { throw invalidPayload(`body.tables[${i}].id is not a string`); }
      if (t.columns === undefined) { throw invalidPayload(`body.tables[${i}].columns is missing`); }
      validators.ColumnsPost({ columns: t.columns }, 'columns');
    });
  },
};

// ---- cells ------------------------------------------------------------------------------

// Column for a written field; Grist answers 400 Invalid column "x" for unknown ones, and
// refuses writes to formula columns. An empty column (isFormula with no formula) becomes a
// data column on first write, as in Grist.
function writableColumn(table, colId, tx) {
  const col = table.requireColumn(colId);
  if (col.isFormula) {
    if (col.formula) {
      throw new ApiError(400, `Error manipulating data: [Sandbox] ValueError Can't save value to formula column ${colId}`);
    }
    col.isFormula = false;
    tx.push(() => { col.isFormula = true; });
  }
  return col;
}

function cellCtx(doc) { return { lookupRef: (t, c, text) => doc.lookupRef(t, c, text) }; }

// Column-oriented values for a list of records, Grist's convertToBulkColValues: the union of
// the records' field names; a record without one of them gets null.
function bulkColValues(doc, table, recs, get, parse, tx) {
  const names = [];
  const seen = new Set();
  for (const r of recs) {
    for (const k of Object.keys(get(r) || {})) { if (!seen.has(k)) { seen.add(k); names.push(k); } }
  }
  const ctx = cellCtx(doc);
  const out = {};
  for (const name of names) {
    const col = writableColumn(table, name, tx);
    out[name] = recs.map((r) => {
      const f = get(r) || {};
      const v = f[name] === undefined ? null : f[name];
      return types.prepareCell(col, v, parse, ctx);
    });
  }
  return out;
}

// ---- responses for reads ------------------------------------------------------------------

function tableRecord(t) {
  const f = meta.tableFields(t);
  delete f.tableId;
  return { id: t.tableId, fields: { tableRef: t.ref, ...f } };
}

// Records of a metadata table (meta.js) after ?filter= (column values, as for any table).
function metaRecordsQuery(doc, tableId, query) {
  const rows = tableId === '_grist_Attachments' ? attachmentRecords(doc) : meta.metaRecords(doc, tableId);
  return rows ? filterRecords(rows, query) : null;
}

function filterRecords(records, query) {
  let rows = records;
  let filters = {};
  if (query.get('filter')) {
    try { filters = JSON.parse(query.get('filter')); } catch (e) { throw new ApiError(500, e.message); }
  }
  if (!isObject(filters) || !Object.values(filters).every(Array.isArray)) {
    throw new ApiError(400, 'Invalid query: filter values must be arrays');
  }
  for (const [c, vals] of Object.entries(filters)) {
    rows = rows.filter((r) => vals.includes(c === 'id' ? r.id : r.fields[c]));
  }
  return rows;
}

// GET /columns: the column's _grist_Tables_column fields, its colId as the record's id.
function columnRecord(c) {
  const { colId, ...fields } = meta.columnFields(c);
  return { id: colId, fields: { colRef: c.colRef, ...fields } };
}

function typeRank(v) {
  if (v === null || v === undefined) { return 0; }
  if (typeof v === 'boolean') { return 1; }
  if (typeof v === 'number') { return 2; }
  if (typeof v === 'string') { return 3; }
  return 4;
}
function compareValues(a, b) {
  const ra = typeRank(a); const rb = typeRank(b);
  if (ra !== rb) { return ra - rb; }
  if (ra === 4) { a = JSON.stringify(a); b = JSON.stringify(b); }
  return a < b ? -1 : a > b ? 1 : 0;
}

// Rows of a table after filter/sort/limit, as [[rowId, row], ...].
function queryRows(req, table, query) {
  let filters = {};
  if (query.get('filter')) {
    try { filters = JSON.parse(query.get('filter')); } catch (e) { throw new ApiError(500, e.message); }
    if (!isObject(filters)) { filters = {}; }
  }
  if (!Object.keys(filters).every((c) => Array.isArray(filters[c]))) {
    throw new ApiError(400, 'Invalid query: filter values must be arrays');
  }
  const { valueKey } = require('./store');
  const filterSets = Object.entries(filters).map(([c, vals]) => {
    if (c !== 'id' && !table.column(c)) { throw new ApiError(400, `Invalid column "${c}"`); }
    return [c, new Set(vals.map((v) => valueKey(types.decodeCell(v))))];
  });
  table.sortedRowIds();
  let rows = [];
  for (const [id, row] of table.rows) {
    let ok = true;
    for (const [c, set] of filterSets) {
      if (!set.has(valueKey(c === 'id' ? id : row[c]))) { ok = false; break; }
    }
    if (ok) { rows.push([id, row]); }
  }
  const sortStr = query.get('sort') || req.headers['x-sort'];
  if (sortStr) {
    const keys = String(sortStr).split(',').filter(Boolean).map((s) => {
      const desc = s.startsWith('-');
      const name = (desc ? s.slice(1) : s).split(':')[0];
      if (name !== 'id' && !table.column(name)) { throw new ApiError(400, `Invalid column "${name}"`); }
      return { name, dir: desc ? -1 : 1 };
    });
    rows.sort((x, y) => {
      for (const k of keys) {
        const c = compareValues(k.name === 'id' ? x[0] : x[1][k.name], k.name === 'id' ? y[0] : y[1][k.name]);
        if (c) { return c * k.dir; }
      }
      return x[0] - y[0];
    });
  }
  const limitStr = query.get('limit') || req.headers['x-limit'];
  if (limitStr) {
    const limit = parseInt(limitStr, 10);
    if (Number.isNaN(limit)) { throw new ApiError(500, 'limit is not a number'); }
    if (limit) { rows = rows.slice(0, limit); }
  }
  return rows;
}

// ---- routes -------------------------------------------------------------------------------
// Each route: kind (for stats), role, and either read(ctx) or write(ctx) returning
// apply(tx) -> result. `validate` runs before the throttle (as `validate(...)` middleware
// does in Grist); `precheck` runs after admission but before queueing.

function attachmentMeta(a) {
  return { fileName: a.fileName, fileSize: a.fileSize, timeUploaded: new Date(a.timeUploaded).toISOString() };
}

// The rows of _grist_Attachments, as grist-core's metadata table holds them.
function attachmentRecords(doc) {
  return [...doc.attachments.entries()].map(([id, a]) => ({
    id,
    fields: {
      fileIdent: a.fileIdent, fileName: a.fileName, fileType: a.fileType, fileSize: a.fileSize,
      imageHeight: a.imageHeight, imageWidth: a.imageWidth, timeUploaded: a.timeUploaded / 1000,
      timeDeleted: null,
    },
  }));
}

const ROUTES = [
  {
    method: 'GET', path: [], kind: 'doc', role: 'viewers', unthrottled: true,
    read: ({ doc, access }) => ({
      id: doc.id, name: doc.name, access, isPinned: false, urlId: null, type: null,
      createdAt: null, updatedAt: null, workspace: null,
    }),
  },
  {
    // DocApi.ts: canEdit, flushes the open document to disk; no effect on its content.
    method: 'POST', path: ['flush'], kind: 'flush', role: 'editors', unthrottled: true,
    read: () => true,
  },
  {
    method: 'GET', path: ['tables'], kind: 'tables', role: 'viewers',
    read: ({ doc }) => ({ tables: [...doc.tables.values()].map(tableRecord) }),
  },
  {
    method: 'POST', path: ['tables'], kind: 'tables', role: 'editors',
    validate: (ctx) => validators.TablesPost(ctx.body),
    write: ({ doc, body }) => (tx) => ({
      tables: body.tables.map((t) => ({ id: doc.addTable(t.id, t.columns, tx).tableId })),
    }),
  },
  {
    method: 'GET', path: ['tables', ':table', 'columns'], kind: 'columns', role: 'viewers',
    read: ({ doc, params, query }) => ({
      columns: doc.table(params.table).userColumns(isAffirmative(query.get('hidden'))).map(columnRecord),
    }),
  },
  {
    method: 'POST', path: ['tables', ':table', 'columns'], kind: 'columns', role: 'editors',
    validate: (ctx) => validators.ColumnsPost(ctx.body),
    write: ({ doc, body, params }) => (tx) => {
      const table = doc.table(params.table);
      return { columns: body.columns.map((c) => ({ id: table.addColumn(c.id, c.fields || {}, tx).colId })) };
    },
  },
  {
    method: 'PATCH', path: ['tables', ':table', 'columns'], kind: 'columns', role: 'editors',
    validate: (ctx) => validators.ColumnsPatch(ctx.body),
    precheck: ({ doc, body, params }) => {
      const table = doc.table(params.table);
      for (const c of body.columns) {
        if (!table.column(c.id)) { throw new ApiError(404, `Column not found "${c.id}"`); }
      }
    },
    write: ({ doc, body, params }) => (tx) => {
      const table = doc.table(params.table);
      const cols = body.columns.map((c) => {
        const col = table.column(c.id);
        if (!col) { throw new ApiError(404, `Column not found "${c.id}"`); }
        return [col, c.fields];
      });
      for (const [col, fields] of cols) { table.modifyColumn(col, fields, tx); }
      return null;
    },
  },
  {
    method: 'PUT', path: ['tables', ':table', 'columns'], kind: 'columns', role: 'editors',
    validate: (ctx) => validators.ColumnsPatch(ctx.body),
    precheck: ({ doc, params }) => { doc.table(params.table); },
    write: ({ doc, body, params, query }) => (tx) => {
      const table = doc.table(params.table);
      const noadd = isAffirmative(query.get('noadd'));
      const noupdate = isAffirmative(query.get('noupdate'));
      const replaceall = isAffirmative(query.get('replaceall'));
      const updated = new Set();
      const updates = [];
      const adds = [];
      for (const c of body.columns) {
        const col = table.column(c.id);
        if (col) { updates.push([col, c.fields]); updated.add(col); } else { adds.push(c); }
      }
      const toRemove = replaceall ? table.userColumns(false).filter((c) => !updated.has(c)) : [];
      if (!noupdate) { for (const [col, fields] of updates) { table.modifyColumn(col, fields, tx); } }
      if (!noadd) { for (const c of adds) { table.addColumn(c.id, c.fields || {}, tx); } }
      for (const col of toRemove) { table.removeColumn(col.colId, tx); }
      return null;
    },
  },
  {
    method: 'DELETE', path: ['tables', ':table', 'columns', ':col'], kind: 'columns', role: 'editors',
    write: ({ doc, params }) => (tx) => { doc.table(params.table).removeColumn(params.col, tx); return null; },
  },
  {
    method: 'GET', path: ['tables', ':table', 'records'], kind: 'records', role: 'viewers',
    read: ({ doc, params, query, req }) => {
      // grist-core keeps attachments' metadata in the metadata table _grist_Attachments,
      // readable like any table (fileIdent is the SHA-1 of the bytes plus the extension).
      if (params.table === '_grist_Attachments') { return { records: attachmentRecords(doc) }; }
      // Pages, widgets, fields, tables and columns: grist-core's metadata tables (meta.js).
      const metaRows = metaRecordsQuery(doc, params.table, query);
      if (metaRows) { return { records: metaRows }; }
      const table = doc.table(params.table);
      const cols = table.userColumns(isAffirmative(query.get('hidden')));
      const rows = queryRows(req, table, query);
      return {
        records: rows.map(([id, row]) => {
          const fields = {};
          for (const c of cols) { fields[c.colId] = types.encodeCell(cellValue(doc, table, id, row, c.colId)); }
          return { id, fields };
        }),
      };
    },
  },
  {
    method: 'GET', path: ['tables', ':table', 'data'], kind: 'data', role: 'viewers',
    read: ({ doc, params, query, req }) => {
      const table = doc.table(params.table);
      const rows = queryRows(req, table, query);
      const out = { id: rows.map(([id]) => id) };
      for (const c of table.columns) {
        out[c.colId] = rows.map(([id, row]) => types.encodeCell(cellValue(doc, table, id, row, c.colId)));
      }
      return out;
    },
  },
  {
    method: 'POST', path: ['tables', ':table', 'records'], kind: 'records', role: 'editors',
    precheck: ({ body }) => validators.RecordsPost(body),
    write: ({ doc, body, params, parse }) => (tx) => {
      const table = doc.table(params.table);
      const colValues = bulkColValues(doc, table, body.records, (r) => r.fields, parse, tx);
      const rowIds = table.addRows(body.records.map(() => null), colValues, tx);
      return { records: rowIds.map((id) => ({ id })) };
    },
  },
  {
    method: 'PATCH', path: ['tables', ':table', 'records'], kind: 'records', role: 'editors',
    validate: (ctx) => validators.RecordsPatch(ctx.body),
    precheck: ({ body }) => {
      // TableOperationsImpl.update: every record must carry the same set of field keys.
      const sets = body.records.map((r) => Object.keys(r.fields || {}).sort().join('\u0001'));
      if (!sets.every((s) => s === sets[0])) {
        throw new ApiError(400, 'PATCH requires all records to have same fields');
      }
    },
    write: ({ doc, body, params, parse }) => (tx) => {
      const table = doc.table(params.table);
      const colValues = bulkColValues(doc, table, body.records, (r) => r.fields, parse, tx);
      table.updateRows(body.records.map((r) => r.id), colValues, tx);
      return null;
    },
  },
  {
    method: 'PUT', path: ['tables', ':table', 'records'], kind: 'records', role: 'editors',
    validate: (ctx) => {
      validators.RecordsPut(ctx.body);
      const onmany = ctx.query.get('onmany') || 'first';
      if (!['first', 'none', 'all'].includes(onmany)) {
        throw new ApiError(400, 'onmany parameter should be one of first,none,all');
      }
    },
    write: (ctx) => (tx) => upsert(ctx, tx),
  },
  {
    method: 'POST', path: ['tables', ':table', 'records', 'delete'], kind: 'records/delete', role: 'editors',
    precheck: (ctx) => checkDeleteBody(ctx),
    noop: ({ body }) => Array.isArray(body) && body.length === 0,
    write: ({ doc, body, params }) => (tx) => { doc.table(params.table).removeRows(body, tx); return null; },
  },
  {
    method: 'POST', path: ['tables', ':table', 'data', 'delete'], kind: 'data/delete', role: 'editors',
    precheck: (ctx) => checkDeleteBody(ctx),
    noop: ({ body }) => Array.isArray(body) && body.length === 0,
    write: ({ doc, body, params }) => (tx) => { doc.table(params.table).removeRows(body, tx); return null; },
  },
  {
    // DocApi.ts: applyUserActions of the body, a list of user actions, as one bundle. The
    // emulator knows those ds2grist sends (meta.js applyAction); others are refused.
    method: 'POST', path: ['apply'], kind: 'apply', role: 'editors',
    validate: ({ body }) => {
      if (!Array.isArray(body) || !body.every(Array.isArray)) {
        throw new ApiError(400, 'Invalid payload', { userError: 'Error: body is not an array of user actions' });
      }
    },
    write: ({ doc, body }) => (tx) => ({
      actionNum: ++doc.actionNum, actionHash: null, isModification: body.length > 0,
      retValues: body.map((a) => meta.applyAction(doc, a, tx)),
    }),
  },
  {
    // DocApi.ts _runSql: a SELECT on the document (sql.js), viewers allowed.
    method: 'POST', path: ['sql'], kind: 'sql', role: 'viewers',
    validate: ({ body }) => {
      if (!isObject(body) || typeof body.sql !== 'string') { throw invalidPayload('body.sql is not a string'); }
      if (body.args !== undefined && !Array.isArray(body.args)) { throw invalidPayload('body.args is not an array'); }
    },
    read: ({ doc, body }) => ({
      statement: body.sql, records: runSql(body.sql, body.args, (name) => meta.sqlRows(doc, name)),
    }),
  },
  {
    method: 'GET', path: ['sql'], kind: 'sql', role: 'viewers',
    read: ({ doc, query }) => ({
      statement: query.get('q'), records: runSql(query.get('q'), [], (name) => meta.sqlRows(doc, name)),
    }),
  },
  {
    method: 'POST', path: ['attachments'], kind: 'attachments', role: 'editors', multipart: true,
    write: ({ doc, files }) => (tx) => files.map((f) => doc.addAttachment(f, tx)),
  },
  {
    // DocApi.ts: the rows of _grist_Attachments (getTableRecords: ?filter= as for any table),
    // cleaned to fileName, fileSize, timeUploaded (cleanAttachmentRecord).
    method: 'GET', path: ['attachments'], kind: 'attachments', role: 'viewers',
    read: ({ doc, query }) => ({
      records: metaRecordsQuery(doc, '_grist_Attachments', query)
        .map((r) => ({ id: r.id, fields: attachmentMeta(doc.attachments.get(r.id)) })),
    }),
  },
  {
    // DocApi.ts POST attachments/removeUnused (ActiveDoc.removeUnusedAttachments): every
    // attachment no Attachments cell refers to is deleted now; with an affirmative
    // ?expiredonly= (isAffirmative: 1, on, true, yes) only those unused for longer than
    // grist-core's expiry, which this emulator never reaches. An agent's "remove unused
    // attachments" after deleting rows.
    method: 'POST', path: ['attachments', 'removeUnused'], kind: 'attachments', role: 'editors',
    write: ({ doc, query }) => (tx) => {
      const expiredOnly = ['1', 'on', 'true', 'yes'].includes(String(query.get('expiredonly') ?? '').toLowerCase());
      if (expiredOnly) { return null; }
      const used = new Set();
      for (const t of doc.tables.values()) {
        for (const c of t.columns) {
          if (c.type !== 'Attachments') { continue; }
          for (const row of t.rows.values()) {
            const v = row[c.colId];
            if (Array.isArray(v)) { v.forEach((x) => { if (Number.isInteger(x)) { used.add(x); } }); }
          }
        }
      }
      for (const [id, a] of [...doc.attachments.entries()]) {
        if (used.has(id)) { continue; }
        doc.attachments.delete(id);
        tx.push(() => { doc.attachments.set(id, a); });
      }
      return null;
    },
  },
  {
    method: 'GET', path: ['attachments', ':att'], kind: 'attachments', role: 'viewers',
    read: ({ doc, params }) => attachmentMeta(getAttachment(doc, params.att)),
  },
  {
    method: 'GET', path: ['attachments', ':att', 'download'], kind: 'attachments', role: 'viewers',
    read: ({ doc, params }) => ({ __raw: getAttachment(doc, params.att) }),
  },
];

function getAttachment(doc, idStr) {
  const id = Number(idStr);
  if (!Number.isInteger(id)) { throw new ApiError(400, `attId parameter should be an integer: ${idStr}`); }
  const a = doc.attachments.get(id);
  if (!a) { throw new ApiError(404, `Attachment not found: ${id}`); }
  return a;
}

function checkDeleteBody({ body, doc, params }) {
  doc.table(params.table);
  if (!Array.isArray(body)) {
    throw new ApiError(400, 'Error manipulating data: [Sandbox] AssertionError: expected a JSON array of row ids');
  }
  for (const id of body) {
    if (!Number.isInteger(id)) {
      throw new ApiError(400, 'Error manipulating data: [Sandbox] AssertionError: row ids must be integers');
    }
  }
}

// PUT /records: TableOperationsImpl.upsert groups records by their (require keys, fields
// keys) and sends one BulkAddOrUpdateRecord per group, all in one bundle; each group follows
// useractions.py BulkAddOrUpdateRecord.
function upsert({ doc, body, params, query, parse }, tx) {
  const table = doc.table(params.table);
  const add = !isAffirmative(query.get('noadd'));
  const update = !isAffirmative(query.get('noupdate'));
  const onMany = query.get('onmany') || 'first';
  const allowEmptyRequire = isAffirmative(query.get('allow_empty_require'));
  const ctx = cellCtx(doc);

  const groups = new Map();
  for (const rec of body.records) {
    const key = `${Object.keys(rec.require).sort().join(',')}:${Object.keys(rec.fields || {}).sort().join(',')}`;
    if (!groups.has(key)) { groups.set(key, []); }
    groups.get(key).push(rec);
  }

  // TableOperationsImpl.upsert: groups applied in the order of their keys; the answer maps
  // each record to its row ids.
  const result = { recordIds: [], addRecordIds: [], updateRecordIds: [] };
  const indexOf = new Map(body.records.map((r, i) => [r, i]));
  const ordered = [...groups.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, g]) => g);
  for (const recs of ordered) {
    const reqKeys = Object.keys(recs[0].require);
    const fieldKeys = Object.keys(recs[0].fields || {});
    if (!reqKeys.length && !allowEmptyRequire) {
      throw new ApiError(400, "Error manipulating data: [Sandbox] ValueError require is empty but allow_empty_require isn't set");
    }
    if (!reqKeys.length && !fieldKeys.length) { continue; }
    const reqCols = reqKeys.map((k) => (k === 'id' ? null : table.requireColumn(k)));
    const fieldCols = fieldKeys.map((k) => (k === 'id' ? null : writableColumn(table, k, tx)));

    // Values used to find matching records (parsed, not converted).
    const lookupVals = recs.map((r) => reqKeys.map((k, j) => (k === 'id' ? r.require.id :
      types.prepareLookupValue(reqCols[j], r.require[k], parse, ctx))));
    if (reqKeys.length) {
      const { valueKey } = require('./store');
      const uniq = new Set(lookupVals.map((vals) => vals.map(valueKey).join('\u0001')));
      if (uniq.size < recs.length) {
        throw new ApiError(400, 'Error manipulating data: [Sandbox] ValueError require values must be unique');
      }
    }
    // Require columns that are real formula columns are used to match but not to add.
    const reqAddIdx = reqKeys.map((k, j) => j).filter((j) => reqKeys[j] !== 'id' &&
      !(reqCols[j].isFormula && reqCols[j].formula));
    const addCols = new Set([...reqAddIdx.map((j) => reqKeys[j]), ...fieldKeys.filter((k) => k !== 'id')]);
    const addIds = [];
    const addVals = {};
    for (const c of addCols) { addVals[c] = []; }
    const updIds = [];
    const updVals = {};
    for (const c of fieldKeys) { if (c !== 'id') { updVals[c] = []; } }

    const allIds = reqKeys.length ? null : table.sortedRowIds();
    const newIndexes = [];
    recs.forEach((rec, i) => {
      result.recordIds[indexOf.get(rec)] = [];
      let matches = reqKeys.length ? table.lookup(reqKeys, lookupVals[i]) : allIds;
      if (!matches.length && add) {
        const values = {};
        for (const j of reqAddIdx) { values[reqKeys[j]] = types.prepareCell(reqCols[j], rec.require[reqKeys[j]], parse, ctx); }
        fieldKeys.forEach((k, j) => {
          if (k !== 'id') { values[k] = types.prepareCell(fieldCols[j], rec.fields[k], parse, ctx); }
        });
        let rowId = reqKeys.includes('id') ? rec.require.id : null;
        if (fieldKeys.includes('id')) { rowId = rec.fields.id; }
        addIds.push(rowId === undefined ? null : rowId);
        for (const c of addCols) { addVals[c].push(values[c]); }
        newIndexes.push(indexOf.get(rec));
      }
      if (matches.length && update) {
        if (matches.length > 1) {
          if (onMany === 'first') { matches = matches.slice(0, 1); } else if (onMany === 'none') { return; }
        }
        for (const m of matches) {
          updIds.push(m);
          fieldKeys.forEach((k, j) => {
            if (k !== 'id') { updVals[k].push(types.prepareCell(fieldCols[j], rec.fields[k], parse, ctx)); }
          });
        }
        result.recordIds[indexOf.get(rec)] = [...matches];
        result.updateRecordIds.push([...matches]);
      }
    });
    if (addIds.length) {
      const newIds = table.addRows(addIds, addVals, tx);
      newIds.forEach((id, k) => { result.recordIds[newIndexes[k]] = [id]; result.addRecordIds.push(id); });
    }
    if (updIds.length) { table.updateRows(updIds, updVals, tx); }
  }
  for (let i = 0; i < body.records.length; i++) { if (!result.recordIds[i]) { result.recordIds[i] = []; } }
  return result;
}

function matchRoute(method, rest) {
  for (const r of ROUTES) {
    if (r.method !== method || r.path.length !== rest.length) { continue; }
    const params = {};
    let ok = true;
    for (let i = 0; i < r.path.length; i++) {
      if (r.path[i].startsWith(':')) { params[r.path[i].slice(1)] = rest[i]; } else if (r.path[i] !== rest[i]) { ok = false; break; }
    }
    if (ok) { return { route: r, params }; }
  }
  return null;
}

// Kind label for stats even when no route matched.
function kindOf(rest) {
  if (rest[0] === 'tables' && rest.length >= 3) { return rest.slice(2).join('/'); }
  if (rest.length === 0) { return 'doc'; }
  return rest[0] || 'other';
}

// ---- write queue ---------------------------------------------------------------------------
// Writes to one document are applied one at a time, in arrival order (Grist's data engine
// applies one bundle of user actions at a time). Each occupies the document for writeCost(tx)
// ms, a cost per row and per cell (see state.js). A virtual clock (start = max(arrival, end of
// the previous write)) keeps timer lateness from accumulating and absorbs the emulator's own
// work. Changes are applied when the write's turn comes; the response is sent when its time has
// elapsed. A failing write is rolled back and costs writeFixedMs.

function writeCost(s, tx) {
  return s.writeFixedMs +
    s.writePerRowMs * tx.added + s.writePerCellMs * tx.addedCells +
    s.writePerUpdatedRowMs * (tx.updated + tx.removed) +
    s.writePerUpdatedCellMs * (tx.updatedCells + tx.removedCells) +
    s.writePerUnchangedCellMs * tx.unchangedCells +
    s.writePerColumnMs * tx.columnsAdded;
}

function enqueue(state, doc, item) {
  return new Promise((resolve, reject) => {
    doc.writeQueue.push({ ...item, resolve, reject, arrival: now() });
    if (!doc.writing) { pump(state, doc); }
  });
}

async function pump(state, doc) {
  doc.writing = true;
  try {
    while (doc.writeQueue.length) {
      const item = doc.writeQueue.shift();
      const s = state.settings;
      const start = Math.max(item.arrival, doc.busyUntil);
      let result; let error; let cost;
      if (item.read) {
        try { result = item.read(); } catch (e) { error = e; }
        cost = s.readFixedMs;
      } else {
        const tx = new Tx();
        try { result = item.apply(tx); } catch (e) { error = e; tx.rollback(); }
        cost = error ? s.writeFixedMs : writeCost(s, tx);
        const st = doc.stats;
        st.writes++;
        if (!error) {
          st.rowsAdded += tx.added; st.rowsUpdated += tx.updated; st.rowsRemoved += tx.removed;
          st.cellsAdded += tx.addedCells; st.cellsUpdated += tx.updatedCells;
          st.cellsUnchanged += tx.unchangedCells; st.columnsAdded += tx.columnsAdded;
        }
        // A document in "slow" mode takes slowMs more per write.
        if (doc.mode.mode === 'slow') { cost += doc.mode.slowMs || 0; }
        st.busyMs += cost;
        if (item.path) { doc.pathEntry(item.path).busyMs += cost; }
      }
      cost += doc.penaltyMs; doc.penaltyMs = 0;
      doc.busyUntil = start + cost;
      const wait = doc.busyUntil - now();
      if (wait > 0) { await sleep(wait); }
      if (error) { item.reject(error); } else { item.resolve(result); }
    }
  } finally {
    doc.writing = false;
  }
}

// JSON bodies are parsed by express.json() on Node's one thread, before the key, the document
// and the throttle are looked at: parseMsPerMB per MB, one body at a time for the whole server,
// on a virtual clock from the moment the body was received. A request parsed while another
// of its document's writes is applied overlaps with it: why 2 requests in flight beat 1.
async function parseDelay(state, req) {
  const bytes = req._bodyBytes || 0;
  const perMB = state.settings.parseMsPerMB;
  if (!bytes || !(perMB > 0)) { return; }
  const cost = perMB * bytes / (1024 * 1024);
  const start = Math.max(req._bodyEnd || now(), state.parserBusyUntil);
  state.parserBusyUntil = start + cost;
  state.stats.parseMs += cost;
  const wait = state.parserBusyUntil - now();
  if (wait >= 1) { await sleep(wait); }   // below a timer's resolution: admitted at once
}

// ---- multipart ------------------------------------------------------------------------------

// The files of the form field `upload` (uploads.ts handleOptionalUpload reads formFiles.upload
// only); other fields and files are read and ignored.
function readMultipart(req) {
  return new Promise((resolve, reject) => {
    let bb;
    try { bb = Busboy({ headers: req.headers }); } catch (e) { reject(new ApiError(400, e.message)); return; }
    const files = [];
    bb.on('file', (name, stream, info) => {
      if (name !== 'upload') { stream.resume(); return; }
      const chunks = [];
      stream.on('data', (c) => chunks.push(c));
      stream.on('end', () => {
        files.push({ field: name, fileName: info.filename || 'file', mimeType: info.mimeType, data: Buffer.concat(chunks) });
      });
    });
    bb.on('close', () => resolve(files));
    bb.on('error', (e) => reject(new ApiError(400, `Upload failed: ${e.message}`)));
    req.pipe(bb);
  });
}

// ---- main handler ---------------------------------------------------------------------------

const BACKLOG = (docId) => `Too many backlogged requests for document ${docId} - try again later?`;

function authenticate(state, req) {
  const h = req.headers.authorization;
  if (h === undefined) { return null; }      // anonymous
  const parts = String(h).split(' ');
  if (parts[0] !== 'Bearer') {
    throw new ApiError(401, "Bad request: unsupported Authorization scheme, expected 'Bearer'");
  }
  if (!parts[1] || !state.keys.has(parts[1])) { throw new ApiError(401, 'Bad request: invalid API key'); }
  return parts[1];
}

async function handleApi(state, req, res, url) {
  const segs = url.pathname.split('/');          // ['', 'api', 'docs', docId, ...rest]
  let docId = '';
  let rest = [];
  let doc = null;
  let status = 500;
  let kind = `${req.method} other`;
  let pathLabel = null;
  let bodyPending = true;
  try {
    try {
      docId = decodeURIComponent(segs[3] || '');
      rest = segs.slice(4).map(decodeURIComponent);
    } catch (e) {
      throw new ApiError(400, 'malformed URL');
    }
    if (rest.length && rest[rest.length - 1] === '') { rest.pop(); }
    pathLabel = `${req.method} /${rest.join('/')}`;
    const m = matchRoute(req.method, rest);
    kind = `${req.method} ${m ? m.route.kind : kindOf(rest)}`;
    const route = m && m.route;

    // What a proxy in front of Grist answers without asking it: a URL over its limit, a
    // document in "alternate" mode (every other request fails).
    const known = state.docs.get(docId) || null;
    if (state.settings.maxUrlBytes > 0 && req.url.length > state.settings.maxUrlBytes) {
      doc = known;
      throw proxyError(414, 'html');
    }
    if (known && known.mode.mode === 'alternate') {
      known.modeRequests++;
      if (known.modeRequests % 2 === 0) {
        doc = known;
        throw proxyError(known.mode.status || 502, known.mode.body || 'html');
      }
    }

    let body = {};
    if (!(route && route.multipart && isMultipart(req))) {
      body = await readJsonRequest(req, state.settings.bodyLimitBytes);
      bodyPending = false;
      await parseDelay(state, req);
    }

    // ?auth=<access token> first, as Authorizer.ts's getRequestIdentity; else the API key.
    const auth = url.searchParams.get('auth');
    const tok = auth ? state.tokens.verify(auth) : null;
    const key = tok ? tok.key : authenticate(state, req);
    // Not explicit credentials: mutating requests need a header a cross-site form cannot set.
    if (tok && !['GET', 'HEAD', 'OPTIONS'].includes(req.method) &&
        !(String(req.headers['content-type'] || '').split(';')[0] === 'application/json' ||
          req.headers['x-requested-with'] === 'XMLHttpRequest')) {
      throw new ApiError(401, "Unauthenticated requests require one of the headers'Content-Type: application/json' or 'X-Requested-With: XMLHttpRequest'");
    }
    doc = state.docs.get(docId) || null;
    if (!doc) { throw new ApiError(404, 'document not found'); }
    // Per-document modes (admin.js): a key revoked for this document, a deleted document.
    if (doc.mode.mode === 'revoked' && key) { throw new ApiError(401, 'Bad request: invalid API key'); }
    if (doc.mode.mode === 'deleted') { throw new ApiError(404, 'document not found'); }
    if (!route) { throw new ApiError(404, `not found: ${url.pathname}`); }
    let access = key ? state.access(key, docId) : null;
    if (tok) {
      // AccessTokenCredential.docAuth: the token's document only, at most viewer if read-only.
      if (tok.docId !== docId) { throw new ApiError(403, 'Document access denied'); }
      if (tok.readOnly && access) { access = 'viewers'; }
    }
    if (!access) { throw new ApiError(403, 'No view access'); }
    if (route.role === 'editors' && access === 'viewers') { throw new ApiError(403, 'No write access'); }

    const ctx = {
      state, req, res, doc, docId, access, body, params: m.params, query: url.searchParams,
      parse: !isAffirmative(url.searchParams.get('noparse')), restPath: `/${rest.join('/')}`,
    };
    if (route.validate) { route.validate(ctx); }

    let result;
    if (route.unthrottled) {
      result = route.read(ctx);
    } else {
      // Per-document throttle (DocApiUsageTracker.acquire): the count is raised first, then
      // checked; released when the handler is done.
      doc.inFlight++;
      try {
        const cap = state.settings.maxParallelPerDoc;
        if (cap > 0 && doc.inFlight > cap) {
          doc.penaltyMs += state.settings.rejectCostMs;
          const e = new ApiError(429, BACKLOG(docId));
          e.throttled = true;
          throw e;
        }
        doc.apiInFlight++;
        try {
          if (doc.inFlight > doc.maxInFlight) { doc.maxInFlight = doc.inFlight; }
          if (doc.apiInFlight > doc.maxApiInFlight) { doc.maxApiInFlight = doc.apiInFlight; }
          result = await runAdmitted(state, route, ctx, url);
          bodyPending = false;
          status = 200;
          if (result && result.__raw) {
            sendAttachment(res, result.__raw, url.searchParams);
          } else {
            sendJson(res, 200, result);
          }
          return;
        } finally {
          doc.apiInFlight--;
        }
      } finally {
        doc.inFlight--;
      }
    }
    status = 200;
    sendJson(res, 200, result);
  } catch (err) {
    status = err.status || 500;
    if (!err.status) { console.error('grist-emulator: internal error', err); }
    // Optional congestion model: a rejected request still costs the server time before its
    // 429 goes out (it no longer holds a slot then). 0 by default: answered at once.
    if (err.throttled && state.settings.rejectDelayMs > 0) { await sleep(state.settings.rejectDelayMs); }
    if (err.bodyKind === 'html' || err.bodyKind === 'html-echo') {
      sendHtml(res, status, req, err.bodyKind === 'html-echo');
    } else {
      sendError(res, err, err.headers);
    }
    if (bodyPending) { drain(req); }
  } finally {
    state.record(kind, status, doc, pathLabel, req._bodyBytes || 0);
  }
}

function proxyError(status, bodyKind) {
  const e = new ApiError(status, `proxy ${status}`);
  e.bodyKind = bodyKind;
  return e;
}

// GET attachments/{id}/download, as DocApi.ts: type from the stored file's extension,
// Content-Disposition attachment (inline with ?inline=1, except html), ?name= overrides the name.
function sendAttachment(res, a, query) {
  const ext = (a.fileIdent.match(/\.[^./\\]*$/) || [''])[0];
  const base = a.fileName.replace(/\.[^./\\]*$/, '');
  const fileName = query.get('name') || (ext ? base + ext : a.fileName);
    let inline = isAffirmative(query.get('inline'));
  if (ext.toLowerCase() === '.html' || ext.toLowerCase() === '.htm') { inline = false; }
  const ascii = fileName.replace(/[^\x20-\x7e]|"/g, '?');
  const disp = `${inline ? 'inline' : 'attachment'}; filename="${ascii}"` +
    (ascii !== fileName ? `; filename*=UTF-8''${encodeURIComponent(fileName)}` : '');
  res.writeHead(200, {
    'Content-Type': mimeOf(ext),
    'Content-Length': a.data.length,
    'Content-Disposition': disp,
    'Cache-Control': 'private, max-age=3600',
    'Content-Security-Policy': "sandbox; default-src 'none'",
  });
  res.end(a.data);
}

const MIME = {
  '.txt': 'text/plain; charset=utf-8', '.html': 'text/html; charset=utf-8', '.htm': 'text/html; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8', '.json': 'application/json; charset=utf-8', '.pdf': 'application/pdf',
  '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif', '.svg': 'image/svg+xml',
  '.zip': 'application/zip', '.doc': 'application/msword', '.xml': 'application/xml; charset=utf-8',
  '.odt': 'application/vnd.oasis.opendocument.text',
  '.docx': 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  '.xlsx': 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
};
// express's res.type(ext): the type of the extension, application/octet-stream when unknown.
function mimeOf(ext) {
  return MIME[String(ext).toLowerCase()] || 'application/octet-stream';
}

function faultError(fault, docId) {
  const e = new ApiError(fault.status, fault.error || defaultFaultMessage(fault.status, docId));
  e.bodyKind = fault.body || 'json';
  if (fault.retryAfter !== null && fault.retryAfter !== undefined) { e.headers = { 'Retry-After': String(fault.retryAfter) }; }
  return e;
}

async function runAdmitted(state, route, ctx, url) {
  const { doc } = ctx;
  const fault = state.takeFault(ctx.docId, ctx.req.method, url.pathname + url.search, ctx.restPath);
  if (fault && !fault.apply) {
    if (route.multipart) { await drain(ctx.req); }
    if (fault.delayMs) { await sleep(fault.delayMs); }
    throw faultError(fault, ctx.docId);
  }
  const result = await runRoute(state, route, ctx, doc);
  if (fault) {
    // Applied; answered late (after the client's timeout), holding its slot meanwhile, with
    // the real answer or the fault's status.
    if (fault.delayMs) { await sleep(fault.delayMs); }
    if (fault.status && fault.status !== 200) { throw faultError(fault, ctx.docId); }
  }
  return result;
}

async function runRoute(state, route, ctx, doc) {
  if (route.read) {
    if (state.settings.readsWaitForWrites) {
      return enqueue(state, doc, { read: () => route.read(ctx) });
    }
    if (state.settings.readFixedMs > 0) { await sleep(state.settings.readFixedMs); }
    return route.read(ctx);
  }
  if (route.multipart) {
    if (!isMultipart(ctx.req)) { throw new ApiError(400, 'missing payload'); }
    ctx.files = await readMultipart(ctx.req);
    if (!ctx.files.length) { throw new ApiError(400, 'missing payload'); }
  }
  if (route.precheck) { route.precheck(ctx); }
  if (route.noop && route.noop(ctx)) { return null; }
  return enqueue(state, doc, { apply: route.write(ctx), path: `${ctx.req.method} ${ctx.restPath}` });
}

function defaultFaultMessage(status, docId) {
  switch (status) {
    case 429: return BACKLOG(docId);
    case 400: return 'Error manipulating data: [Sandbox] emulated fault';
    case 401: return 'Bad request: invalid API key';
    case 403: return 'No view access';
    case 404: return 'document not found';
    case 500: return 'Internal server error (emulated fault)';
    case 502: return 'Bad Gateway (emulated fault)';
    case 503: return 'Service Unavailable (emulated fault)';
    case 504: return 'Gateway Timeout (emulated fault)';
    default: return `emulated fault ${status}`;
  }
}

module.exports = { handleApi, BACKLOG, enqueue };
