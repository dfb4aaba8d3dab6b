'use strict';
// The few formula shapes ds2grist writes, computed when a formula column is read (grist-core
// runs any Python; the emulator knows only these):
//   Table.lookupOne(a=$b, c=$d)   the first row of Table (lowest id) whose a equals this row's
//                                 b..., or 0 (Table.lookupOne in sandbox/grist/table.py)
//   $ref.col                      the col of the row the Ref column ref points at (null if
//                                 none): the display formula of SetDisplayFormula
//   $col                          this row's col
// Any other formula reads as null.

const LOOKUP = /^\s*([A-Za-z_][\w]*)\.lookupOne\(([^)]*)\)\s*$/;
const ATTR = /^\s*\$([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?\s*$/;

function lookupArgs(text) {
  const out = [];
  for (const part of text.split(',')) {
    const m = part.match(/^\s*([A-Za-z_]\w*)\s*=\s*\$([A-Za-z_]\w*)\s*$/);
    if (!m) { return null; }
    out.push([m[1], m[2]]);
  }
  return out;
}

// The value of colId in row (id rowId) of table, a formula computed (depth guards loops).
function cellValue(doc, table, rowId, row, colId, depth = 0) {
  const col = table.column(colId);
  if (!col || !col.isFormula || !col.formula) { return row ? row[colId] : null; }
  if (depth > 8) { return null; }
  let m = col.formula.match(LOOKUP);
  if (m) {
    const target = doc.tables.get(m[1]);
    const args = lookupArgs(m[2]);
    if (!target || !args || args.some(([a]) => !target.column(a))) { return null; }
    const vals = args.map(([, b]) => cellValue(doc, table, rowId, row, b, depth + 1));
    const found = target.lookup(args.map(([a]) => a), vals);
    return found.length ? found[0] : 0;
  }
  m = col.formula.match(ATTR);
  if (m) {
    const v = cellValue(doc, table, rowId, row, m[1], depth + 1);
    if (!m[2]) { return v; }
    const ref = table.column(m[1]);
    const refTable = ref && ref.type.startsWith('Ref:') ? doc.tables.get(ref.type.slice(4)) : null;
    const target = refTable && typeof v === 'number' ? refTable.rows.get(v) : null;
    return target ? cellValue(doc, refTable, v, target, m[2], depth + 1) : null;
  }
  return null;
}

module.exports = { cellValue };
