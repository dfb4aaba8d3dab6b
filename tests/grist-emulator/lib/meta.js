'use strict';
// grist-core's metadata tables as the emulator's documents hold them (schema.py): read
// through GET /tables/<_grist_...>/records, POST /sql, and changed by the few user actions of
// POST /apply that ds2grist sends (useractions.py).

const { ApiError } = require('./errors');
const { cellValue } = require('./formula');

function columnFields(c) {
  return {
    parentId: c.parentId, parentPos: c.parentPos, colId: c.colId, type: c.type,
    widgetOptions: c.widgetOptions, isFormula: c.isFormula, formula: c.formula, label: c.label,
    description: c.description, untieColIdFromLabel: c.untieColIdFromLabel,
    summarySourceCol: c.summarySourceCol, displayCol: c.displayCol, visibleCol: c.visibleCol,
    rules: c.rules, reverseCol: c.reverseCol, recalcWhen: c.recalcWhen, recalcDeps: c.recalcDeps,
  };
}

function tableFields(t) {
  return {
    tableId: t.tableId, primaryViewId: t.primaryViewId, summarySourceTable: 0, onDemand: false,
    rawViewSectionRef: t.rawViewSectionRef, recordCardViewSectionRef: t.recordCardViewSectionRef,
  };
}

// [{id, fields}] of a metadata table, or null if tableId is not one the emulator keeps.
function metaRecords(doc, tableId) {
  if (tableId === '_grist_Tables') {
    return [...doc.tables.values()].sort((a, b) => a.ref - b.ref).map((t) => ({ id: t.ref, fields: tableFields(t) }));
  }
  if (tableId === '_grist_Tables_column') {
    const cols = [];
    for (const t of doc.tables.values()) { for (const c of t.columns) { cols.push({ id: c.colRef, fields: columnFields(c) }); } }
    return cols.sort((a, b) => a.id - b.id);
  }
  return doc.views.records(tableId);
}

// The rows /sql reads: a metadata table, or a user table with its formulas computed.
function sqlRows(doc, name) {
  const meta = metaRecords(doc, name);
  if (meta) { return meta.map((r) => ({ id: r.id, ...r.fields })); }
  const t = doc.tables.get(name);
  if (!t) { return null; }
  return t.sortedRowIds().map((id) => {
    const row = t.rows.get(id);
    const out = { id };
    for (const c of t.columns) { out[c.colId] = cellValue(doc, t, id, row, c.colId); }
    return out;
  });
}

function columnByRef(doc, colRef) {
  for (const t of doc.tables.values()) {
    const c = t.columns.find((x) => x.colRef === colRef);
    if (c) { return { table: t, col: c }; }
  }
  return null;
}

function sandboxError(msg) { return new ApiError(400, `Error manipulating data: [Sandbox] ${msg}`); }

// useractions.py _add_or_update_helper_col, for a column's display formula: the table's
// gristHelper_Display* formula column of that formula, else a new one (doAddColumn: no field).
function helperColumn(table, formula, tx) {
  const found = table.columns.find((c) => c.colId.startsWith('gristHelper_Display') && c.isFormula &&
    c.formula === formula);
  if (found) { return found.colRef; }
  return table.addColumn('gristHelper_Display', { type: 'Any', isFormula: true, formula }, tx, { hidden: true }).colRef;
}

// SetDisplayFormula(table_id, field_ref, col_ref, formula); col_ref a row id or a colId.
function setDisplayFormula(doc, [tableId, fieldRef, colRef, formula], tx) {
  const table = doc.table(tableId);
  if (fieldRef && colRef) { throw sandboxError('AssertionError Should set either field or column display formula'); }
  let owner;
  if (fieldRef) {
    owner = doc.views.fields.get(fieldRef);
    if (!owner) { throw sandboxError(`KeyError ${fieldRef}`); }
  } else {
    const col = typeof colRef === 'string' ? table.column(colRef) : (columnByRef(doc, colRef) || {}).col;
    if (!col) { throw sandboxError(`KeyError '${colRef}'`); }
    owner = col;
  }
  const users = (ref) => [...table.columns, ...doc.views.fields.values()].filter((x) => x.displayCol === ref).length;
  const old = owner.displayCol ? columnByRef(doc, owner.displayCol) : null;
  let ref = 0;
  if (formula && old && users(owner.displayCol) === 1) {
    const before = old.col.formula;
    old.col.formula = formula;
    tx.push(() => { old.col.formula = before; });
    return null;
  }
  if (formula) { ref = helperColumn(table, formula, tx); }
  const before = owner.displayCol;
  owner.displayCol = ref;
  tx.push(() => { owner.displayCol = before; });
  return null;
}

function removeFields(doc, ids, tx) {
  const raw = new Set([...doc.tables.values()].map((t) => t.rawViewSectionRef));
  doc.views.removeFields(ids, (sectionId) => raw.has(sectionId), tx);
  return null;
}

// One user action of POST /apply; its retValue.
function applyAction(doc, action, tx) {
  if (!Array.isArray(action) || typeof action[0] !== 'string') {
    throw new ApiError(400, 'Invalid payload', { userError: 'Error: body[0] is not an array' });
  }
  const [name, ...args] = action;
  const meta = args[0];
  if ((name === 'BulkRemoveRecord' || name === 'RemoveRecord') && meta === '_grist_Views_section_field') {
    return removeFields(doc, name === 'RemoveRecord' ? [args[1]] : args[1] || [], tx);
  }
  if (name === 'ModifyColumn') {
    const table = doc.table(args[0]);
    const col = table.column(args[1]);
    if (!col) { throw sandboxError(`KeyError '${args[1]}'`); }
    table.modifyColumn(col, args[2] || {}, tx);
    return null;
  }
  if (name === 'UpdateRecord' && meta === '_grist_Tables_column') {
    const found = columnByRef(doc, args[1]);
    if (!found) { throw sandboxError(`KeyError ${args[1]}`); }
    found.table.modifyColumn(found.col, args[2] || {}, tx);
    return null;
  }
  if (name === 'SetDisplayFormula') { return setDisplayFormula(doc, args, tx); }
  throw sandboxError(`the emulator does not implement the user action ${name}${meta ? ` on ${meta}` : ''}`);
}

module.exports = { metaRecords, sqlRows, applyAction, tableFields, columnFields };
