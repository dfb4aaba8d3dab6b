'use strict';
// Identifier rules, a line-by-line port of grist-core's sandbox/grist/identifiers.py
// (pick_table_ident, pick_col_ident, pick_col_ident_list, _gen_ident) plus the avoid
// sets used by useractions.py (AddTable avoids {'id'} and puts manualSort first;
// AddColumn avoids the table's existing colIds plus 'id').

// Python 3 keywords (Grist's sandbox runs Python 3), plus None/True/False.
const PY_KEYWORDS = new Set([
  'False', 'None', 'True', 'and', 'as', 'assert', 'async', 'await', 'break', 'class',
  'continue', 'def', 'del', 'elif', 'else', 'except', 'finally', 'for', 'from', 'global',
  'if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or', 'pass', 'raise',
  'return', 'try', 'while', 'with', 'yield',
]);

// _sanitize_ident: NFKD, drop combining marks ('é' -> 'e'), runs of invalid chars -> '_',
// strip leading '_', prefix if it starts with a digit, optionally capitalize the first
// letter, and prefix Python keywords.
function sanitizeIdent(ident, prefix = 'c', capitalize = false) {
  let s = ident === null || ident === undefined ? '' : String(ident);
  s = s.normalize('NFKD').replace(/\p{Mn}/gu, '');
  s = s.replace(/[^a-zA-Z0-9_]+/g, '_').replace(/^_+/, '');
  if (/^[0-9_]/.test(s)) { s = prefix + s; }
  if (!s) { return s; }
  if (capitalize) { s = s[0].toUpperCase() + s.slice(1); }
  while (PY_KEYWORDS.has(s)) { s = prefix + s; }
  return s;
}

function upperSet(avoid) {
  const out = new Set();
  for (const a of avoid) { out.add(String(a).toUpperCase()); }
  return out;
}

// _add_suffix: base + N (with '_' first if base ends in a digit), first N not in avoid.
function addSuffix(base, avoidUpper, next = 1) {
  if (/\d$/.test(base)) { base += '_'; }
  for (;;) {
    const ident = `${base}${next}`;
    if (!avoidUpper.has(ident.toUpperCase())) { return ident; }
    next += 1;
  }
}

function maybeAddSuffix(ident, avoidUpper) {
  return avoidUpper.has(ident.toUpperCase()) ? addSuffix(ident, avoidUpper, 2) : ident;
}

// Excel-like letters: A..Z, AA, AB, ...
function genIdent(avoidUpper) {
  for (let len = 1; ; len++) {
    const total = Math.pow(26, len);
    for (let n = 0; n < total; n++) {
      let s = '';
      let x = n;
      for (let i = 0; i < len; i++) { s = String.fromCharCode(65 + (x % 26)) + s; x = Math.floor(x / 26); }
      if (!avoidUpper.has(s)) { return s; }
    }
  }
}

// Comparisons are case-insensitive, as in Grist (avoid sets are upper-cased).
function pickTableIdent(ident, avoid = []) {
  const avoidUpper = upperSet(avoid);
  const s = sanitizeIdent(ident, 'T', true);
  return s ? maybeAddSuffix(s, avoidUpper) : addSuffix('Table', avoidUpper, 1);
}

function pickColIdent(ident, avoid = []) {
  const avoidUpper = upperSet(avoid);
  const s = sanitizeIdent(ident, 'c', false);
  return s ? maybeAddSuffix(s, avoidUpper) : genIdent(avoidUpper);
}

function pickColIdentList(idents, avoid = []) {
  const avoidSet = new Set(avoid);
  const result = [];
  for (const ident of idents) {
    const picked = pickColIdent(ident, avoidSet);
    avoidSet.add(picked);
    result.push(picked);
  }
  return result;
}

module.exports = { sanitizeIdent, pickTableIdent, pickColIdent, pickColIdentList, genIdent };
