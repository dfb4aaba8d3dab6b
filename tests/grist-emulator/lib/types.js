'use strict';
// Column types and cell values.
//
// Two separate steps happen to every written cell, as in Grist:
//  1. parseString(): only when parsing is on (the default; `?noparse=1` turns it off) and only
//     for string values. This mirrors app/common/ValueParser.ts, which runs in Grist's node
//     process before the action reaches the data engine (Numeric/Int, Date, DateTime,
//     ChoiceList, Ref, RefList, Attachments have parsers; Text/Bool/Choice/Any do not).
//     A string that does not parse is left unchanged.
//  2. convert(): ALWAYS applied, as the data engine does (sandbox/grist/usertypes.py
//     do_convert). E.g. a Numeric column turns "12.5" into 12.5 even with noparse, a Date
//     column accepts ISO strings even with noparse, a Bool column turns "yes" into true.
//     A value that cannot be converted is stored as text ("AltText") and returned as a string.
//
// Values are stored decoded: lists as JS arrays (returned as ["L", ...]), everything else as
// plain JSON values.

const BASE_TYPES = new Set([
  'Any', 'Text', 'Numeric', 'Int', 'Bool', 'Date', 'DateTime', 'Choice', 'ChoiceList',
  'Ref', 'RefList', 'Attachments', 'Blob', 'Id', 'PositionNumber', 'ManualSortPos',
]);

function baseType(type) {
  const i = type.indexOf(':');
  return i < 0 ? type : type.slice(0, i);
}
function typeArg(type) {
  const i = type.indexOf(':');
  return i < 0 ? '' : type.slice(i + 1);
}

// Returns an error string if the type is not one Grist's data engine knows, else null.
function checkType(type) {
  if (typeof type !== 'string') { return 'column type must be a string'; }
  const b = baseType(type);
  if (!BASE_TYPES.has(b)) { return `unknown column type "${type}"`; }
  if ((b === 'Ref' || b === 'RefList') && !typeArg(type)) { return `column type "${type}" needs a table`; }
  return null;
}

function defaultValue(type) {
  switch (baseType(type)) {
    case 'Text': case 'Choice': return '';
    case 'Numeric': case 'Int': case 'Ref': case 'Id': return 0;
    case 'Bool': return false;
    default: return null;   // Any, Date, DateTime, ChoiceList, RefList, Attachments, Blob
  }
}

// ---------------------------------------------------------------------------------------
// Wire encoding (app/plugin/GristData.ts GristObjCode)

// Decode a cell value as received in a request.
function decodeCell(v) {
  if (Array.isArray(v) && v.length > 0 && typeof v[0] === 'string') {
    switch (v[0]) {
      case 'L': return v.slice(1).map(decodeCell);
      case 'd': return typeof v[1] === 'number' ? v[1] : v;        // ["d", ts]
      case 'D': return typeof v[1] === 'number' ? v[1] : v;        // ["D", ts, tz]
      case 'R': return typeof v[2] === 'number' ? v[2] : v;        // ["R", table, id]
      case 'r': return Array.isArray(v[2]) ? v[2].slice() : v;      // ["r", table, ids]
      case 'O': return (v[1] && typeof v[1] === 'object') ? { __dict: v[1] } : v;
      default: return v;
    }
  }
  return v;
}

// Encode a stored value for a response.
function encodeCell(v) {
  if (Array.isArray(v)) { return ['L', ...v.map(encodeCell)]; }
  if (v && typeof v === 'object' && v.__dict) { return ['O', v.__dict]; }
  return v;
}

// ---------------------------------------------------------------------------------------
// Python-ish helpers used by the engine conversions.

const PY_FLOAT_RE = /^[+-]?(?:(?:\d(?:_?\d)*)?\.\d(?:_?\d)*|\d(?:_?\d)*\.?)(?:[eE][+-]?\d(?:_?\d)*)?$/;

// Python float(): returns a number or throws.
function pyFloat(v) {
  if (typeof v === 'number') { return v; }
  if (typeof v === 'boolean') { return v ? 1 : 0; }
  if (typeof v === 'string') {
    const s = v.trim();
    if (PY_FLOAT_RE.test(s)) { return Number(s.replace(/_/g, '')); }
    const low = s.toLowerCase().replace(/^[+-]/, '');
    if (low === 'nan') { return NaN; }
    if (low === 'inf' || low === 'infinity') { return s.startsWith('-') ? -Infinity : Infinity; }
  }
  throw new Error('could not convert to float');
}

function pyRepr(v, top = true) {
  if (v === null || v === undefined) { return 'None'; }
  if (v === true) { return 'True'; }
  if (v === false) { return 'False'; }
  if (typeof v === 'number') { return String(v); }
  if (typeof v === 'string') { return top ? v : `'${v.replace(/'/g, "\\'")}'`; }
  if (Array.isArray(v)) { return `[${v.map((x) => pyRepr(x, false)).join(', ')}]`; }
  if (v.__dict) { return pyRepr(v.__dict, top); }
  return `{${Object.entries(v).map(([k, x]) => `'${k}': ${pyRepr(x, false)}`).join(', ')}}`;
}

// Text.do_convert of a number: integers without ".0", else up to 15 significant digits.
function numberToText(n) {
  if (Number.isInteger(n) && Math.abs(n) < 2 ** 53) { return String(n); }
  if (!Number.isFinite(n)) { return String(n); }
  return String(Number(n.toPrecision(15)));
}

const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;
function isIntShort(n) { return Number.isInteger(n) && n >= INT_MIN && n <= INT_MAX; }

// ---------------------------------------------------------------------------------------
// Time zones and ISO dates.

const dtfCache = new Map();
function getDtf(tz) {
  let f = dtfCache.get(tz);
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
        hour: 'numeric', minute: 'numeric', second: 'numeric',
      });
    } catch (e) {
      f = null;   // unknown zone: Grist falls back to UTC
    }
    dtfCache.set(tz, f);
  }
  return f;
}

// Offset (ms) of zone `tz` at UTC instant utcMs.
function tzOffsetMs(tz, utcMs) {
  const f = tz && tz !== 'UTC' ? getDtf(tz) : null;
  if (!f) { return 0; }
  const p = {};
  for (const part of f.formatToParts(new Date(utcMs))) { p[part.type] = part.value; }
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute, +p.second);
  return asUtc - Math.floor(utcMs / 1000) * 1000;
}

// Converts a wall-clock time in zone tz (given as ms "as if UTC") to a UTC instant.
function localToUtcMs(localMs, tz) {
  const off1 = tzOffsetMs(tz, localMs);
  let utc = localMs - off1;
  const off2 = tzOffsetMs(tz, utc);
  if (off2 !== off1) { utc = localMs - off2; }
  return utc;
}

// A subset of ISO 8601 as accepted by python's iso8601.parse_date:
// YYYY[-MM[-DD]] or YYYYMMDD, optional [T or space]HH[:MM[:SS[.fff]]], optional Z / ±HH[:MM].
const ISO_RE = /^\s*(\d{4})(?:-?(\d{2})(?:-?(\d{2}))?)?(?:[T ](\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*$/i;

function parseIsoParts(s) {
  const m = ISO_RE.exec(s);
  if (!m) { return null; }
  const y = +m[1]; const mo = m[2] ? +m[2] : 1; const d = m[3] ? +m[3] : 1;
  const h = m[4] ? +m[4] : 0; const mi = m[5] ? +m[5] : 0; const sec = m[6] ? +m[6] : 0;
  const frac = m[7] ? Number('0.' + m[7]) : 0;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) { return null; }
  const dayMs = Date.UTC(y, mo - 1, d);
  if (new Date(dayMs).getUTCDate() !== d) { return null; }   // e.g. Feb 30
  let offsetMs = null;
  if (m[8]) {
    if (m[8].toUpperCase() === 'Z') { offsetMs = 0; } else {
      const sign = m[8][0] === '-' ? -1 : 1;
      const digits = m[8].slice(1).replace(':', '');
      offsetMs = sign * ((+digits.slice(0, 2)) * 60 + (+(digits.slice(2) || 0))) * 60000;
    }
  }
  return { y, mo, d, localMs: dayMs + ((h * 60 + mi) * 60 + sec) * 1000 + Math.round(frac * 1000), offsetMs };
}

// moment.parse_iso_date: date part only, UTC midnight, in seconds.
function parseIsoDate(s) {
  const p = parseIsoParts(s);
  if (!p) { return null; }
  return Date.UTC(p.y, p.mo - 1, p.d) / 1000;
}

// moment.parse_iso: naive times are taken in the column's zone.
function parseIsoDateTime(s, tz) {
  const p = parseIsoParts(s);
  if (!p) { return null; }
  const utc = p.offsetMs !== null ? p.localMs - p.offsetMs : localToUtcMs(p.localMs, tz);
  return utc / 1000;
}

// ---------------------------------------------------------------------------------------
// Engine conversion (usertypes.py do_convert). Returns the stored value; failures return
// the text of the original value (AltText).

function altText(v) { return typeof v === 'string' ? v : pyRepr(v); }

function convertRef(v) {
  if (!v) { return 0; }
  if (v === true) { return 1; }
  if (typeof v === 'number' && isIntShort(v)) { return v; }
  throw new Error('Cannot convert to Id type');
}

function convert(type, v) {
  const b = baseType(type);
  try {
    switch (b) {
      case 'Any':
      case 'Blob':
        return v === undefined ? null : v;
      case 'Text':
      case 'Choice':
        if (v === null || v === undefined) { return null; }
        if (typeof v === 'string') { return v; }
        if (typeof v === 'number') { return numberToText(v); }
        return pyRepr(v);
      case 'Bool':
        if (!v || (Array.isArray(v) && v.length === 0)) { return false; }
        if (v === true) { return true; }
        if (typeof v === 'number') { return true; }
        if (typeof v === 'string') {
          const low = v.toLowerCase();
          if (low === 'false' || low === 'no' || low === '0') { return false; }
          if (low === 'true' || low === 'yes' || low === '1') { return true; }
        }
        return altText(v);
      case 'Int': {
        if (v === '' || v === null || v === undefined) { return null; }
        const f = pyFloat(v);
        if (!Number.isFinite(f)) { return altText(v); }
        const n = Math.trunc(f);
        return isIntShort(n) ? n : altText(v);
      }
      case 'Numeric': {
        if (v === '' || v === null || v === undefined) { return null; }
        const f = pyFloat(v);
        return Number.isFinite(f) ? f : altText(v);
      }
      case 'Date':
      case 'DateTime': {
        if (v === '' || v === null || v === undefined) { return null; }
        if (typeof v === 'number') { return v; }
        if (typeof v === 'boolean') { return v ? 1 : 0; }
        if (typeof v === 'string') {
          const ts = b === 'Date' ? parseIsoDate(v) : parseIsoDateTime(v, typeArg(type) || 'UTC');
          return ts === null ? v : ts;
        }
        return altText(v);
      }
      case 'ChoiceList': {
        if (!v || (Array.isArray(v) && v.length === 0)) { return null; }
        if (typeof v === 'string') {
          if (v.startsWith('[')) {
            try {
              const arr = JSON.parse(v);
              if (Array.isArray(arr)) { return arr.map((x) => (typeof x === 'string' ? x : convert('Text', x))); }
            } catch (e) { /* keep as text */ }
          }
          return v;
        }
        if (Array.isArray(v)) { return v.map((x) => (typeof x === 'string' ? x : convert('Text', x))); }
        return altText(v);
      }
      case 'Ref':
      case 'Id':
        return convertRef(v);
      case 'RefList':
      case 'Attachments': {
        let val = v;
        if (typeof val === 'string' && val.startsWith('[')) {
          try { val = JSON.parse(val); } catch (e) { /* keep */ }
        }
        if (!val || (Array.isArray(val) && val.length === 0)) { return null; }
        if (!Array.isArray(val)) { return altText(v); }
        return val.map(convertRef);
      }
      case 'PositionNumber':
      case 'ManualSortPos':
        if (v === '' || v === null || v === undefined) { return Infinity; }
        return pyFloat(v);
      default:
        return v;
    }
  } catch (e) {
    return altText(v);
  }
}

// ---------------------------------------------------------------------------------------
// String parsing (ValueParser.ts), en-US document locale.

// NumericParser: tolerates thousands separators, currency signs, spaces, parentheses for
// negatives, a trailing percent sign. Returns a number or null.
function parseNumber(s) {
  let t = s.trim();
  if (!t) { return null; }
  let neg = false;
  if (/^\(.*\)$/.test(t)) { neg = true; t = t.slice(1, -1).trim(); }
  let pct = false;
  if (t.endsWith('%')) { pct = true; t = t.slice(0, -1).trim(); }
  t = t.replace(/^([+-]?)\s*[$€£¥]\s*/, '$1').replace(/\s+/g, '');
  if (t.startsWith('-')) { neg = !neg; t = t.slice(1); } else if (t.startsWith('+')) { t = t.slice(1); }
  t = t.replace(/^[$€£¥]/, '');
  if (!/^(\d{1,3}(,\d{3})+|\d+)?(\.\d*)?([eE][+-]?\d+)?$/.test(t) || !/\d/.test(t)) { return null; }
  let n = Number(t.replace(/,/g, ''));
  if (!Number.isFinite(n)) { return null; }
  if (pct) { n /= 100; }
  return neg ? -n : n;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

// Order of year/month/day in a moment.js date format, e.g. "DD/MM/YYYY" -> "DMY".
function formatOrder(fmt) {
  const order = [];
  const re = /Y+|M+|D+/g;
  let m;
  while ((m = re.exec(fmt || '')) !== null) {
    const c = m[0][0];
    if (!order.includes(c)) { order.push(c); }
  }
  return order.length === 3 ? order.join('') : 'YMD';
}

// DateParser (simplified parseDate): ISO first, then three numbers in the order of the
// column's dateFormat (widgetOptions.dateFormat, default YYYY-MM-DD), month names accepted.
// Returns {y, mo, d, rest} or null.
function parseDateParts(s, dateFormat) {
  const iso = parseIsoParts(s);
  if (iso) { return { y: iso.y, mo: iso.mo, d: iso.d, iso }; }
  const m = /^\s*([0-9A-Za-z]+)[\s/.\-,]+([0-9A-Za-z]+)[\s/.\-,]+(\d{2,4})(?:[\sT]+(.*))?$/.exec(s);
  if (!m) { return null; }
  let order = formatOrder(dateFormat);
  const parts = [m[1], m[2], m[3]];
  if (/^\d{4}$/.test(m[1])) { order = 'YMD'; }
  if (order[0] === 'Y' && !/^\d{4}$/.test(m[1])) {
    // A year-first format but the year is last: try month-first, then day-first.
    const mdy = parseDateParts(`${m[3]}-${m[1]}-${m[2]}`, 'YYYY-MM-DD');
    const dmy = parseDateParts(`${m[3]}-${m[2]}-${m[1]}`, 'YYYY-MM-DD');
    const r = (/^\d+$/.test(m[1]) && /^\d+$/.test(m[2])) ? (mdy || dmy) : null;
    if (r) { return { y: r.y, mo: r.mo, d: r.d, rest: m[4] || '' }; }
    order = 'MDY';
  }
  const vals = {};
  for (let i = 0; i < 3; i++) {
    const key = order[i];
    const raw = parts[i];
    if (/^\d+$/.test(raw)) {
      vals[key] = +raw;
    } else {
      const idx = MONTHS.indexOf(raw.slice(0, 3).toLowerCase());
      if (idx < 0) { return null; }
      // A month name wherever it is: the numbers fill the other slots in order.
      vals.nameMonth = idx + 1;
      vals[key] = null;
    }
  }
  if (vals.nameMonth) {
    const nums = parts.filter((p) => /^\d+$/.test(p)).map(Number);
    const y = nums.find((n) => n > 31) ?? nums[nums.length - 1];
    const d = nums.find((n) => n !== y);
    Object.assign(vals, { Y: y, M: vals.nameMonth, D: d });
  }
  let y = vals.Y; const mo = vals.M; const d = vals.D;
  if (y < 100) { y += y < 50 ? 2000 : 1900; }
  if (!(mo >= 1 && mo <= 12 && d >= 1 && d <= 31)) { return null; }
  const ms = Date.UTC(y, mo - 1, d);
  if (new Date(ms).getUTCDate() !== d) { return null; }
  return { y, mo, d, rest: m[4] || '' };
}

function parseTimeOfDay(rest) {
  const t = /^\s*(\d{1,2})(?::(\d{2}))?(?::(\d{2})(?:\.(\d+))?)?\s*(am|pm)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$/i.exec(rest);
  if (!t) { return null; }
  let h = +t[1];
  if (t[5]) { const pm = t[5].toLowerCase() === 'pm'; if (h === 12) { h = pm ? 12 : 0; } else if (pm) { h += 12; } }
  const mi = t[2] ? +t[2] : 0; const sec = t[3] ? +t[3] : 0;
  if (h > 23 || mi > 59 || sec > 59) { return null; }
  let offsetMs = null;
  if (t[6]) {
    if (t[6].toUpperCase() === 'Z') { offsetMs = 0; } else {
      const sign = t[6][0] === '-' ? -1 : 1; const dg = t[6].slice(1).replace(':', '');
      offsetMs = sign * (+dg.slice(0, 2) * 60 + +dg.slice(2)) * 60000;
    }
  }
  return { ms: ((h * 60 + mi) * 60 + sec) * 1000 + (t[4] ? Math.round(Number('0.' + t[4]) * 1000) : 0), offsetMs };
}

function parseOptions(col) {
  if (!col.widgetOptions) { return {}; }
  try { return JSON.parse(col.widgetOptions) || {}; } catch (e) { return {}; }
}

// `ctx.lookupRef(tableId, visibleColRef, text)` resolves display values for Ref columns.
function parseString(col, s, ctx) {
  const b = baseType(col.type);
  switch (b) {
    case 'Numeric':
    case 'Int': {
      const n = parseNumber(s);
      return n === null ? s : n;
    }
    case 'Date': {
      const p = parseDateParts(s, parseOptions(col).dateFormat);
      return p ? Date.UTC(p.y, p.mo - 1, p.d) / 1000 : s;
    }
    case 'DateTime': {
      const p = parseDateParts(s, parseOptions(col).dateFormat);
      if (!p) { return s; }
      if (p.iso) { return convert(col.type, s); }
      const tz = typeArg(col.type) || 'UTC';
      const time = p.rest ? parseTimeOfDay(p.rest) : { ms: 0, offsetMs: null };
      if (!time) { return s; }
      const local = Date.UTC(p.y, p.mo - 1, p.d) + time.ms;
      return (time.offsetMs !== null ? local - time.offsetMs : localToUtcMs(local, tz)) / 1000;
    }
    case 'ChoiceList': {
      const t = s.trim();
      if (!t) { return null; }
      if (t.startsWith('[')) {
        try { const arr = JSON.parse(t); if (Array.isArray(arr)) { return arr.map(String); } } catch (e) { /* csv */ }
      }
      return t.split(',').map((x) => x.trim()).filter(Boolean);
    }
    case 'Ref': {
      const t = s.trim();
      if (!t) { return 0; }
      if (col.visibleCol && ctx && ctx.lookupRef) {
        const id = ctx.lookupRef(typeArg(col.type), col.visibleCol, t);
        return id || s;
      }
      return /^\d+$/.test(t) ? Number(t) : s;
    }
    case 'RefList':
    case 'Attachments': {
      const t = s.trim();
      if (!t) { return null; }
      if (t.startsWith('[')) {
        try { const arr = JSON.parse(t); if (Array.isArray(arr)) { return arr; } } catch (e) { /* fall through */ }
      }
      if (b === 'RefList' && col.visibleCol && ctx && ctx.lookupRef) {
        const ids = t.split(',').map((x) => ctx.lookupRef(typeArg(col.type), col.visibleCol, x.trim()));
        return ids.every(Boolean) ? ids : s;
      }
      return s;
    }
    default:
      return s;
  }
}

// Full pipeline for one written cell.
function prepareCell(col, raw, parseStrings, ctx) {
  let v = decodeCell(raw);
  if (parseStrings && typeof v === 'string') { v = parseString(col, v, ctx); }
  return convert(col.type, v);
}

// Value used to match `require` in an upsert: parsed (when parsing is on) but not converted,
// as Grist's lookup_records compares the given value with the stored one.
function prepareLookupValue(col, raw, parseStrings, ctx) {
  let v = decodeCell(raw);
  if (parseStrings && typeof v === 'string') { v = parseString(col, v, ctx); }
  return v;
}

module.exports = {
  baseType, typeArg, checkType, defaultValue, decodeCell, encodeCell, convert, parseString,
  prepareCell, prepareLookupValue, parseNumber, parseIsoDate, parseIsoDateTime, pyRepr,
};
