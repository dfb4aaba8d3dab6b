'use strict';
// POST /sql (DocApi.ts _runSql, runSQLQuery.ts): grist-core runs a SELECT on the document's
// SQLite file. The emulator evaluates a subset of SELECT over its tables, the metadata ones
// included, enough for reading a document's structure:
//   select ( UNION ALL select )*
//   select := SELECT item, ... FROM table [AS] alias ( [INNER] JOIN table [AS] alias ON expr )*
//             [ WHERE expr ]
//   item   := * | expr [ [AS] name ]
//   expr   := OR / AND / NOT, comparisons (= == <> != < <= > >=), [NOT] IN (expr, ...),
//             column (alias.col or col), number, 'string', ? (args, in order), ( expr )
// Bool cells read as 0/1, as SQLite holds them. Anything else: 400 with SQLite's kind of text.

const { ApiError } = require('./errors');

const KEYWORDS = new Set(['SELECT', 'FROM', 'JOIN', 'INNER', 'ON', 'WHERE', 'AND', 'OR', 'NOT', 'IN',
  'AS', 'UNION', 'ALL']);

function sqlError(msg) { return new ApiError(400, `SQLITE_ERROR: ${msg}`); }

function tokenize(text) {
  const toks = [];
  const re = /\s+|(\d+(?:\.\d+)?)|'((?:[^']|'')*)'|"((?:[^"]|"")*)"|([A-Za-z_][\w]*)|(<>|!=|<=|>=|==|[=<>(),.*?;])/y;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) { throw sqlError(`unrecognized token: "${text.slice(pos, pos + 10)}"`); }
    pos = re.lastIndex;
    if (m[1] !== undefined) { toks.push({ k: 'num', v: Number(m[1]) }); } else if (m[2] !== undefined) {
      toks.push({ k: 'str', v: m[2].replace(/''/g, "'") });
    } else if (m[3] !== undefined) { toks.push({ k: 'id', v: m[3].replace(/""/g, '"') }); } else if (m[4] !== undefined) {
      const up = m[4].toUpperCase();
      toks.push(KEYWORDS.has(up) ? { k: 'kw', v: up } : { k: 'id', v: m[4] });
    } else if (m[5] !== undefined) { toks.push({ k: 'op', v: m[5] }); }
  }
  while (toks.length && toks[toks.length - 1].v === ';') { toks.pop(); }
  return toks;
}

class Parser {
  constructor(toks) { this.t = toks; this.i = 0; this.nargs = 0; }
  peek(v) { const t = this.t[this.i]; return t && (v === undefined || t.v === v) ? t : null; }
  take(v) { const t = this.peek(v); if (t) { this.i++; } return t; }
  expect(v) {
    const t = this.take(v);
    if (!t) { const n = this.t[this.i]; throw sqlError(n ? `near "${n.v}": syntax error` : 'incomplete input'); }
    return t;
  }
  ident() {
    const t = this.t[this.i];
    if (!t || t.k !== 'id') { throw sqlError(t ? `near "${t.v}": syntax error` : 'incomplete input'); }
    this.i++;
    return t.v;
  }
  query() {
    const selects = [this.select()];
    while (this.take('UNION')) { this.expect('ALL'); selects.push(this.select()); }
    if (this.i < this.t.length) { throw sqlError(`near "${this.t[this.i].v}": syntax error`); }
    return selects;
  }
  source() {
    const table = this.ident();
    this.take('AS');
    const alias = this.peek() && this.peek().k === 'id' ? this.ident() : table;
    return { table, alias };
  }
  select() {
    this.expect('SELECT');
    const items = [];
    do {
      if (this.take('*')) { items.push({ star: true }); continue; }
      const start = this.i;
      const expr = this.expr();
      let name = null;
      if (this.take('AS')) { name = this.ident(); } else if (this.peek() && this.peek().k === 'id') { name = this.ident(); }
      if (!name) { name = expr.col || this.t.slice(start, this.i).map((t) => t.v).join(''); }
      items.push({ expr, name });
    } while (this.take(','));
    this.expect('FROM');
    const sources = [this.source()];
    const joins = [];
    for (;;) {
      this.take('INNER');
      if (!this.take('JOIN')) { break; }
      const src = this.source();
      this.expect('ON');
      sources.push(src);
      joins.push(this.expr());
    }
    const where = this.take('WHERE') ? this.expr() : null;
    return { items, sources, joins, where };
  }
  expr() {
    let e = this.and();
    while (this.take('OR')) { e = { op: 'OR', a: e, b: this.and() }; }
    return e;
  }
  and() {
    let e = this.not();
    while (this.take('AND')) { e = { op: 'AND', a: e, b: this.not() }; }
    return e;
  }
  not() { return this.take('NOT') ? { op: 'NOT', a: this.not() } : this.cmp(); }
  cmp() {
    const a = this.primary();
    const t = this.peek();
    if (t && ['=', '==', '<>', '!=', '<', '<=', '>', '>='].includes(t.v)) {
      this.i++;
      return { op: t.v === '==' ? '=' : t.v === '!=' ? '<>' : t.v, a, b: this.primary() };
    }
    const negate = this.peek('NOT') && this.t[this.i + 1] && this.t[this.i + 1].v === 'IN';
    if (negate) { this.i++; }
    if (this.take('IN')) {
      this.expect('(');
      const list = [this.expr()];
      while (this.take(',')) { list.push(this.expr()); }
      this.expect(')');
      const e = { op: 'IN', a, list };
      return negate ? { op: 'NOT', a: e } : e;
    }
    return a;
  }
  primary() {
    const t = this.t[this.i];
    if (!t) { throw sqlError('incomplete input'); }
    if (t.k === 'num' || t.k === 'str') { this.i++; return { lit: t.v }; }
    if (t.v === '?') { this.i++; return { arg: this.nargs++ }; }
    if (t.v === '(') { this.i++; const e = this.expr(); this.expect(')'); return e; }
    if (t.k === 'id') {
      this.i++;
      if (this.take('.')) { return { alias: t.v, col: this.ident() }; }
      return { col: t.v };
    }
    throw sqlError(`near "${t.v}": syntax error`);
  }
}

function sqlValue(v) { return typeof v === 'boolean' ? (v ? 1 : 0) : v === undefined ? null : v; }

// SQLite's comparison of two values: null compares as unknown (null), numbers before text.
function compare(a, b) {
  if (a === null || b === null) { return null; }
  const ra = typeof a === 'number' ? 0 : 1; const rb = typeof b === 'number' ? 0 : 1;
  if (ra !== rb) { return ra - rb; }
  return a < b ? -1 : a > b ? 1 : 0;
}

function evaluate(e, env, args) {
  if ('lit' in e) { return e.lit; }
  if ('arg' in e) { return e.arg < args.length ? sqlValue(args[e.arg]) : null; }
  if (e.col !== undefined && !e.op) { return lookupColumn(e, env); }
  switch (e.op) {
  case 'OR': { const a = evaluate(e.a, env, args); const b = evaluate(e.b, env, args); return a || b ? 1 : (a === null || b === null ? null : 0); }
  case 'AND': { const a = evaluate(e.a, env, args); const b = evaluate(e.b, env, args); return a === 0 || b === 0 || a === false || b === false ? 0 : (a === null || b === null ? null : (a && b ? 1 : 0)); }
  case 'NOT': { const a = evaluate(e.a, env, args); return a === null ? null : (a ? 0 : 1); }
  case 'IN': {
    const a = evaluate(e.a, env, args);
    if (a === null) { return null; }
    return e.list.some((x) => compare(a, evaluate(x, env, args)) === 0) ? 1 : 0;
  }
  default: {
    const c = compare(evaluate(e.a, env, args), evaluate(e.b, env, args));
    if (c === null) { return null; }
    return { '=': c === 0, '<>': c !== 0, '<': c < 0, '<=': c <= 0, '>': c > 0, '>=': c >= 0 }[e.op] ? 1 : 0;
  }
  }
}

function lookupColumn(e, env) {
  if (e.alias !== undefined) {
    const row = env.rows[e.alias];
    if (!row) { throw sqlError(`no such column: ${e.alias}.${e.col}`); }
    if (!(e.col in row)) { throw sqlError(`no such column: ${e.alias}.${e.col}`); }
    return row[e.col];
  }
  const owners = Object.keys(env.rows).filter((a) => e.col in env.rows[a]);
  if (owners.length > 1) { throw sqlError(`ambiguous column name: ${e.col}`); }
  if (!owners.length) { throw sqlError(`no such column: ${e.col}`); }
  return env.rows[owners[0]][e.col];
}

// rowsOf(tableName) -> [{id, ...cells}] or null (no such table).
function runSelect(sel, rowsOf, args) {
  const data = sel.sources.map((s) => {
    const rows = rowsOf(s.table);
    if (!rows) { throw sqlError(`no such table: ${s.table}`); }
    return rows;
  });
  let envs = data[0].map((r) => ({ rows: { [sel.sources[0].alias]: r } }));
  for (let j = 1; j < sel.sources.length; j++) {
    const next = [];
    for (const env of envs) {
      for (const r of data[j]) {
        const e = { rows: { ...env.rows, [sel.sources[j].alias]: r } };
        if (evaluate(sel.joins[j - 1], e, args)) { next.push(e); }
      }
    }
    envs = next;
  }
  if (sel.where) { envs = envs.filter((env) => evaluate(sel.where, env, args)); }
  return envs.map((env) => {
    const out = [];
    for (const it of sel.items) {
      if (it.star) {
        for (const s of sel.sources) { for (const [k, v] of Object.entries(env.rows[s.alias])) { out.push([k, v]); } }
      } else {
        out.push([it.name, evaluate(it.expr, env, args)]);
      }
    }
    return out;
  });
}

// The records grist-core answers: [{fields: {name: value}}], names of the first select.
function runSql(text, args, rowsOf) {
  if (typeof text !== 'string' || !text.toLowerCase().includes('select')) {
    throw new ApiError(400, 'only select statements are supported');
  }
  const parser = new Parser(tokenize(text));
  const selects = parser.query();
  const rows = [];
  let names = null;
  for (const sel of selects) {
    for (const r of runSelect(sel, rowsOf, args || [])) {
      if (!names) { names = r.map(([k]) => k); }
      if (r.length !== names.length) { throw sqlError('SELECTs to the left and right of UNION ALL do not have the same number of result columns'); }
      const fields = {};
      r.forEach(([, v], i) => { fields[names[i]] = sqlValue(v); });
      rows.push({ fields });
    }
  }
  return rows;
}

module.exports = { runSql };
