'use strict';
// In-memory documents: tables, columns, rows, attachments.
// Every mutating operation takes a transaction (`tx`, an undo log) so that a request whose
// actions fail part-way is rolled back entirely, as Grist applies a request's actions as one
// bundle.

const crypto = require('crypto');
const ids = require('./ids');
const types = require('./types');
const { ApiError } = require('./errors');
const { Views } = require('./views');

class Tx {
  constructor() {
    this.undo = [];
    // What the cost model charges (api.js writeCost).
    this.added = 0; this.addedCells = 0;            // new rows, cells written into them
    this.updated = 0; this.updatedCells = 0;        // updated rows, cells whose value changed
    this.unchangedCells = 0;                        // cells an update sent with their current value
    this.removed = 0; this.removedCells = 0;        // removed rows, their cells
    this.columnsAdded = 0;
  }
  push(fn) { this.undo.push(fn); }
  rollback() { while (this.undo.length) { this.undo.pop()(); } }
}

// Key for the upsert lookup index. Python compares True == 1 and 1 == 1.0, so booleans
// become numbers; strings and numbers never match each other.
function valueKey(v) {
  if (v === null || v === undefined) { return 'z'; }
  if (typeof v === 'number') { return 'n' + v; }
  if (typeof v === 'boolean') { return v ? 'n1' : 'n0'; }
  if (typeof v === 'string') { return 's' + v; }
  return 'j' + JSON.stringify(v);
}

const COLUMN_FIELD_DEFAULTS = {
  type: 'Any', widgetOptions: '', isFormula: false, formula: '', label: '', description: '',
  untieColIdFromLabel: false, summarySourceCol: 0, displayCol: 0, visibleCol: 0, rules: null,
  recalcWhen: 0, recalcDeps: null, reverseCol: 0,
};
const SETTABLE_COLUMN_FIELDS = new Set(Object.keys(COLUMN_FIELD_DEFAULTS).concat(['colId']));

class Table {
  constructor(doc, tableId, ref) {
    this.doc = doc;
    this.tableId = tableId;
    this.ref = ref;
    this.columns = [];              // ordered column metadata, including hidden manualSort
    this.colById = new Map();
    this.rows = new Map();          // rowId -> {colId: value}
    this.maxRowId = 0;
    this.maxDirty = false;
    this.unsorted = false;          // true when rows were not added in increasing id order
    this.indexes = new Map();       // upsert lookup indexes, keyed by the sorted colId list
    // _grist_Tables' references to its page and widgets (views.js)
    this.primaryViewId = 0;
    this.rawViewSectionRef = 0;
    this.recordCardViewSectionRef = 0;
  }

  userColumns(includeHidden = false) {
    return includeHidden ? this.columns :
      this.columns.filter((c) => c.colId !== 'manualSort' && !c.colId.startsWith('gristHelper_'));
  }

  sortedRowIds() {
    if (this.unsorted) {
      this.rows = new Map([...this.rows.entries()].sort((a, b) => a[0] - b[0]));
      this.unsorted = false;
    }
    return [...this.rows.keys()];
  }

  // Grist's next row id is max(existing)+1: the id of a deleted last row is reused.
  nextRowId() {
    if (this.maxDirty) {
      let m = 0;
      for (const id of this.rows.keys()) { if (id > m) { m = id; } }
      this.maxRowId = m;
      this.maxDirty = false;
    }
    return this.maxRowId + 1;
  }

  column(colId) { return this.colById.get(colId); }

  requireColumn(colId) {
    const c = this.colById.get(colId);
    if (!c || colId === 'id') { throw new ApiError(400, `Invalid column "${colId}"`); }
    return c;
  }

  // ---- indexes for upserts -------------------------------------------------------------
  getIndex(colIds) {
    const key = colIds.join('\u0001');
    let idx = this.indexes.get(key);
    if (!idx) {
      idx = { colIds, map: new Map() };
      for (const [rowId, row] of this.rows) { this._indexAdd(idx, rowId, row); }
      this.indexes.set(key, idx);
    }
    return idx;
  }
  _rowKey(idx, rowId, row) {
    return idx.colIds.map((c) => (c === 'id' ? valueKey(rowId) : valueKey(row[c]))).join('\u0001');
  }
  _indexAdd(idx, rowId, row) {
    const k = this._rowKey(idx, rowId, row);
    let set = idx.map.get(k);
    if (!set) { set = new Set(); idx.map.set(k, set); }
    set.add(rowId);
  }
  _indexRemove(idx, rowId, row) {
    const k = this._rowKey(idx, rowId, row);
    const set = idx.map.get(k);
    if (set) { set.delete(rowId); if (!set.size) { idx.map.delete(k); } }
  }
  lookup(colIds, values) {
    const idx = this.getIndex(colIds);
    const set = idx.map.get(values.map(valueKey).join('\u0001'));
    return set ? [...set].sort((a, b) => a - b) : [];
  }

  // ---- row operations ------------------------------------------------------------------
  // colValues: {colId: [already converted values]}; rowIds: array of ids or nulls.
  addRows(rowIds, colValues, tx) {
    const out = [];
    for (let i = 0; i < rowIds.length; i++) {
      let id = rowIds[i];
      if (id === null || id === undefined) {
        id = this.nextRowId();
      } else if (this.rows.has(id)) {
        throw new ApiError(400, `Error manipulating data: [Sandbox] ValueError Row id ${id} already exists`);
      }
      const row = {};
      for (const c of this.columns) {
        row[c.colId] = c.colId === 'manualSort' ? id : types.defaultValue(c.type);
      }
      for (const colId of Object.keys(colValues)) { row[colId] = colValues[colId][i]; }
      if (id < this.maxRowId) { this.unsorted = true; }
      this.rows.set(id, row);
      if (id > this.maxRowId) { this.maxRowId = id; }
      for (const idx of this.indexes.values()) { this._indexAdd(idx, id, row); }
      out.push(id);
      tx.push(() => this._deleteRow(id));
    }
    tx.added += out.length;
    tx.addedCells += out.length * Object.keys(colValues).length;
    return out;
  }

  _deleteRow(id) {
    const row = this.rows.get(id);
    if (!row) { return; }
    for (const idx of this.indexes.values()) { this._indexRemove(idx, id, row); }
    this.rows.delete(id);
    if (id === this.maxRowId) { this.maxDirty = true; }
  }

  _restoreRow(id, row) {
    if (id < this.maxRowId) { this.unsorted = true; }
    this.rows.set(id, row);
    if (id > this.maxRowId) { this.maxRowId = id; }
    for (const idx of this.indexes.values()) { this._indexAdd(idx, id, row); }
  }

  updateRows(rowIds, colValues, tx) {
    const colIds = Object.keys(colValues);
    for (const id of rowIds) {
      if (!this.rows.has(id)) { throw new ApiError(400, `Invalid row id ${id}`); }
    }
    const touched = [...this.indexes.values()].filter((idx) => idx.colIds.some((c) => colIds.includes(c)));
    for (let i = 0; i < rowIds.length; i++) {
      const id = rowIds[i];
      const row = this.rows.get(id);
      for (const idx of touched) { this._indexRemove(idx, id, row); }
      const old = {};
      for (const c of colIds) {
        old[c] = row[c];
        // Grist trims an update's unchanged values (engine.trim_update_action).
        if (sameValue(old[c], colValues[c][i])) { tx.unchangedCells++; } else { tx.updatedCells++; }
        row[c] = colValues[c][i];
      }
      for (const idx of touched) { this._indexAdd(idx, id, row); }
      tx.push(() => {
        for (const idx of touched) { this._indexRemove(idx, id, row); }
        Object.assign(row, old);
        for (const idx of touched) { this._indexAdd(idx, id, row); }
      });
    }
    tx.updated += rowIds.length;
  }

  removeRows(rowIds, tx) {
    for (const id of rowIds) {
      if (!Number.isInteger(id) || !this.rows.has(id)) { throw new ApiError(400, `Invalid row id ${id}`); }
    }
    for (const id of rowIds) {
      const row = this.rows.get(id);
      if (!row) { continue; }   // repeated id in the same request
      this._deleteRow(id);
      tx.push(() => this._restoreRow(id, row));
      tx.removed++;
      tx.removedCells += this.userColumns(false).length;
    }
    // References to removed rows are cleared in other tables, as Grist does.
    this.doc.clearReferencesTo(this.tableId, new Set(rowIds), tx);
  }

  // ---- column operations ---------------------------------------------------------------
  // Adds one column; colId is picked by Grist's rules (avoiding existing ids and 'id').
  // As AddVisibleColumn (POST/PUT /columns) unless hidden: then as doAddColumn, no field.
  addColumn(colId, fields, tx, { pickedId, hidden } = {}) {
    const finalId = pickedId || ids.pickColIdent(colId === undefined || colId === null || colId === '' ?
      (fields.label || null) : colId, [...this.colById.keys(), 'id']);
    const col = makeColumn(this.doc, this, finalId, fields);
    tx.columnsAdded++;
    this.columns.push(col);
    this.colById.set(finalId, col);
    const dflt = types.defaultValue(col.type);
    for (const row of this.rows.values()) { row[finalId] = dflt; }
    tx.push(() => {
      this.columns.splice(this.columns.indexOf(col), 1);
      this.colById.delete(finalId);
      for (const row of this.rows.values()) { delete row[finalId]; }
    });
    if (!hidden) { this.doc.views.addVisibleColumn(this, col, tx); }
    return col;
  }

  removeColumn(colId, tx) {
    const col = this.colById.get(colId);
    if (!col) { throw new ApiError(400, `Invalid column "${colId}"`); }
    const pos = this.columns.indexOf(col);
    const saved = new Map();
    for (const [id, row] of this.rows) { saved.set(id, row[colId]); delete row[colId]; }
    this.columns.splice(pos, 1);
    this.colById.delete(colId);
    this.dropIndexes();
    this.doc.views.removeColumnFields(col, tx);
    tx.push(() => {
      this.columns.splice(pos, 0, col);
      this.colById.set(colId, col);
      for (const [id, row] of this.rows) { row[colId] = saved.get(id); }
      this.dropIndexes();
    });
  }

  // Updates column metadata, as an UpdateRecord on _grist_Tables_column does:
  // - changing `label` renames the column to match (unless untieColIdFromLabel), a Grist
  //   behaviour worth knowing: PATCH {"label": "Numéro"} turns colId "numero" into "Numero";
  // - changing `type` converts the existing values.
  modifyColumn(col, fields, tx) {
    for (const k of Object.keys(fields)) {
      if (!SETTABLE_COLUMN_FIELDS.has(k)) {
        throw new ApiError(400, `Error manipulating data: [Sandbox] KeyError '${k}'`);
      }
    }
    const values = { ...fields };
    if ('label' in values && !('untieColIdFromLabel' in values ? values.untieColIdFromLabel : col.untieColIdFromLabel)) {
      if (!('colId' in values)) { values.colId = values.label; }
    }
    if (values.untieColIdFromLabel === false && !('colId' in values)) {
      values.colId = 'label' in values ? values.label : col.label;
    }
    if ('type' in values) {
      const err = types.checkType(values.type);
      if (err) { throw new ApiError(400, `Error manipulating data: ${err}`); }
    }
    const before = { ...col };
    // Rename.
    if ('colId' in values && values.colId !== col.colId) {
      const avoid = [...this.colById.keys(), 'id'].filter((c) => c !== col.colId);
      const newId = ids.pickColIdent(values.colId, avoid);
      if (newId !== col.colId) { this._renameColumn(col, newId, tx); }
    }
    delete values.colId;
    // Type change: convert values.
    if ('type' in values && values.type !== col.type) {
      const saved = new Map();
      for (const [id, row] of this.rows) {
        saved.set(id, row[col.colId]);
        row[col.colId] = types.convert(values.type, row[col.colId]);
      }
      const colId = col.colId;
      tx.push(() => { for (const [id, row] of this.rows) { if (saved.has(id)) { row[colId] = saved.get(id); } } });
      this.dropIndexes();
    }
    if ('widgetOptions' in values && typeof values.widgetOptions !== 'string') {
      values.widgetOptions = JSON.stringify(values.widgetOptions || '');
    }
    for (const [k, v] of Object.entries(values)) { col[k] = v; }
    tx.push(() => { Object.assign(col, before); });
  }

  _renameColumn(col, newId, tx) {
    const oldId = col.colId;
    for (const row of this.rows.values()) { row[newId] = row[oldId]; delete row[oldId]; }
    this.colById.delete(oldId);
    this.colById.set(newId, col);
    col.colId = newId;
    this.dropIndexes();
    tx.push(() => {
      for (const row of this.rows.values()) { row[oldId] = row[newId]; delete row[newId]; }
      this.colById.delete(newId);
      this.colById.set(oldId, col);
      col.colId = oldId;
      this.dropIndexes();
    });
  }

  dropIndexes() { this.indexes.clear(); }
}

function makeColumn(doc, table, colId, fields) {
  const type = fields.type === undefined ? 'Any' : fields.type;
  const err = types.checkType(type);
  if (err) { throw new ApiError(400, `Error manipulating data: ${err}`); }
  for (const k of Object.keys(fields)) {
    if (!SETTABLE_COLUMN_FIELDS.has(k) && k !== 'id') {
      throw new ApiError(400, `Error manipulating data: [Sandbox] KeyError '${k}'`);
    }
  }
  const col = { ...COLUMN_FIELD_DEFAULTS };
  for (const [k, v] of Object.entries(fields)) { if (k !== 'id' && k !== 'colId') { col[k] = v; } }
  col.type = type;
  if (typeof col.widgetOptions !== 'string') { col.widgetOptions = JSON.stringify(col.widgetOptions || ''); }
  if (fields.label === undefined) { col.label = colId; }
  col.colId = colId;
  col.colRef = doc.nextColRef++;
  col.parentId = table.ref;
  col.parentPos = col.colRef;
  return col;
}

class Doc {
  constructor(id, name) {
    this.id = id;
    this.name = name || id;
    this.tables = new Map();
    this.nextTableRef = 1;
    this.nextColRef = 1;
    this.attachments = new Map();
    this.nextAttachmentId = 1;
    this.views = new Views();       // pages, widgets and their fields (views.js)
    this.actionNum = 0;             // POST /apply's answers
    // Runtime counters (see state.js / admin.js).
    this.inFlight = 0;          // every admitted API request + occupied slots
    this.apiInFlight = 0;       // admitted API requests only
    this.occupied = 0;          // slots held through POST /admin/docs/{doc}/occupy
    this.maxInFlight = 0;
    this.maxApiInFlight = 0;
    this.penaltyMs = 0;         // rejectCostMs accumulated by 429s, charged to the next write
    this.mode = { mode: 'normal' };   // POST /admin/docs/{doc}/mode
    this.modeRequests = 0;
    this.resetStats();
    // Write queue: writes to a document are applied one at a time.
    this.writeQueue = [];
    this.writing = false;
    this.busyUntil = 0;         // virtual clock of the write pipeline (ms, performance.now())
  }

  resetStats() {
    this.stats = {
      writes: 0, rowsAdded: 0, rowsUpdated: 0, rowsRemoved: 0, cellsAdded: 0, cellsUpdated: 0,
      cellsUnchanged: 0, columnsAdded: 0, busyMs: 0,
    };
    this.requests = 0;
    this.sent429 = 0;
    this.byStatus = {};
    this.paths = {};              // "METHOD /path" -> {requests, bytes, byStatus}
    this.maxInFlight = this.inFlight;
    this.maxApiInFlight = this.apiInFlight;
  }

  // Counters of one "METHOD /path" (state.record, api.js pump).
  pathEntry(label) {
    let p = this.paths[label];
    if (!p) { p = { requests: 0, bytes: 0, busyMs: 0, byStatus: {} }; this.paths[label] = p; }
    return p;
  }

  table(tableId) {
    const t = this.tables.get(tableId);
    if (!t) { throw new ApiError(404, `Table not found "${tableId}"`); }
    return t;
  }

  // AddTable: the table id is sanitised and de-duplicated (case-insensitively) against the
  // existing tables; a hidden manualSort column comes first, then the columns, whose ids are
  // picked by pick_col_ident_list(avoid={'id'}).
  addTable(tableId, columns, tx) {
    const finalId = ids.pickTableIdent(tableId === undefined ? null : tableId, [...this.tables.keys()]);
    const table = new Table(this, finalId, this.nextTableRef++);
    const colIds = ids.pickColIdentList(['manualSort', ...columns.map((c) => {
      if (c.id !== undefined && c.id !== null && c.id !== '') { return c.id; }
      return (c.fields && c.fields.label) || null;
    })], ['id']);
    const cols = [{ fields: { type: 'ManualSortPos' } }, ...columns];
    for (let i = 0; i < cols.length; i++) {
      const col = makeColumn(this, table, colIds[i], cols[i].fields || {});
      tx.columnsAdded++;
      table.columns.push(col);
      table.colById.set(col.colId, col);
    }
    this.tables.set(finalId, table);
    tx.push(() => { this.tables.delete(finalId); });
    this.views.addTable(table, tableId || finalId, tx);
    return table;
  }

  // Used by Ref parsing: find a row of `tableId` whose visible column equals `text`.
  lookupRef(tableId, visibleColRef, text) {
    const t = this.tables.get(tableId);
    if (!t) { return 0; }
    const col = t.columns.find((c) => c.colRef === visibleColRef);
    if (!col) { return 0; }
    for (const [id, row] of t.rows) {
      const v = row[col.colId];
      if (v === text || (typeof v === 'number' && String(v) === text)) { return id; }
    }
    return 0;
  }

  clearReferencesTo(tableId, rowIdSet, tx) {
    for (const t of this.tables.values()) {
      for (const c of t.columns) {
        const b = types.baseType(c.type);
        if (!((b === 'Ref' || b === 'RefList') && types.typeArg(c.type) === tableId)) { continue; }
        const upd = [];
        const vals = [];
        for (const [id, row] of t.rows) {
          const v = row[c.colId];
          if (b === 'Ref' && typeof v === 'number' && rowIdSet.has(v)) { upd.push(id); vals.push(0); }
          if (b === 'RefList' && Array.isArray(v) && v.some((x) => rowIdSet.has(x))) {
            const nv = v.filter((x) => !rowIdSet.has(x));
            upd.push(id); vals.push(nv.length ? nv : null);
          }
        }
        if (upd.length) {
          const before = [tx.updated, tx.updatedCells, tx.unchangedCells];
          t.updateRows(upd, { [c.colId]: vals }, tx);
          [tx.updated, tx.updatedCells, tx.unchangedCells] = before;   // indirect updates are not charged
        }
      }
    }
  }

  addAttachment(file, tx) {
    const id = this.nextAttachmentId++;
    const ext = (file.fileName.match(/\.[^./\\]*$/) || [''])[0];
    const rec = {
      fileName: file.fileName,
      fileSize: file.data.length,
      fileIdent: crypto.createHash('sha1').update(file.data).digest('hex') + ext,
      fileType: file.mimeType || '',
      timeUploaded: Date.now(),
      imageHeight: 0,
      imageWidth: 0,
      data: file.data,
    };
    this.attachments.set(id, rec);
    tx.push(() => { this.attachments.delete(id); this.nextAttachmentId = id; });
    tx.added += 1;
    return id;
  }
}

// Python's == on decoded cell values, enough to tell an unchanged cell (1 == 1.0, True == 1).
function sameValue(a, b) {
  if (a === b) { return true; }
  if (typeof a === 'boolean') { a = a ? 1 : 0; }
  if (typeof b === 'boolean') { b = b ? 1 : 0; }
  if (a === b) { return true; }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') { return false; }
  return JSON.stringify(a) === JSON.stringify(b);
}

module.exports = { Doc, Table, Tx, valueKey, SETTABLE_COLUMN_FIELDS };
