'use strict';
// GraphQL layer: the subset schema (schema.graphql) executed by graphql-js,
// DS-style cursor connections, and the depth / complexity analysis.
const fs = require('fs');
const path = require('path');
const {
  buildSchema, parse, validate, execute, GraphQLError, Kind, getNamedType, isAbstractType,
  isListType, getNullableType,
} = require('graphql');
const { isoParis, parseIso } = require('./util');

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 100; // graphql-ruby default_max_page_size on DS: larger `first` is clamped

function loadSchema() {
  const schema = buildSchema(fs.readFileSync(path.join(__dirname, '..', 'schema.graphql'), 'utf8'));
  // Scalars: DS (graphql-ruby) serialises BigInt as a string; date inputs are validated.
  const bigint = schema.getType('BigInt');
  bigint.serialize = (v) => String(v);
  const dt = schema.getType('ISO8601DateTime');
  const checkDt = (v) => {
    if (Number.isNaN(parseIso(v))) throw new TypeError(`${JSON.stringify(v)} is not a valid ISO8601DateTime`);
    return v;
  };
  dt.parseValue = checkDt;
  dt.parseLiteral = (ast) => {
    if (ast.kind !== Kind.STRING) throw new TypeError('ISO8601DateTime must be a string');
    return checkDt(ast.value);
  };
  return schema;
}

const gqlError = (message, code) => new GraphQLError(message, { extensions: { code } });

// --- cursors -----------------------------------------------------------------
// Opaque to clients; encodes the ordering key of a node (timestamp with ms
// precision, id), like DS' "timestamp;id" cursors, so a stored cursor stays
// valid while dossiers change: a dossier updated later moves past it.
function encodeCursor(ms, id) {
  return Buffer.from(`${new Date(ms).toISOString()};${id}`).toString('base64');
}
function decodeCursor(c) {
  const s = Buffer.from(String(c), 'base64').toString('utf8');
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z);(\d+)$/.exec(s);
  if (!m) throw gqlError('Invalid cursor', 'bad_request');
  return { k: Date.parse(m[1]), id: Number(m[2]) };
}

/**
 * DS CursorConnection semantics (app/graphql/connections/cursor_connection.rb
 * and its controller spec): first/last clamped to 100, default 100, items
 * ordered by (key, id), after/before strictly exclusive, hasPreviousPage true
 * whenever `after` is given, hasNextPage true whenever `before` is given.
 * The deprecated `order: DESC` mirrors the ordering (nodes come newest first
 * and `after` continues towards older ones), as the DS spec expects.
 */
function connection(items, keyOf, idOf, args, renderNode, onNodes) {
  const { first = null, last = null, before = null, after = null, order = 'ASC' } = args;
  if (first != null && last != null) throw gqlError('Arguments "first" and "last" are exclusive', 'bad_request');
  if (before != null && after != null) throw gqlError('Arguments "before" and "after" are exclusive', 'bad_request');
  if (first != null && first < 0) throw gqlError('Argument "first" must be a non-negative integer', 'bad_request');
  if (last != null && last < 0) throw gqlError('Argument "last" must be a non-negative integer', 'bad_request');
  const dir = order === 'DESC' ? -1 : 1;
  const limit = Math.min(first ?? last ?? DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE) + 1;
  const inverted = last != null || before != null;
  const cmp = (a, b) => dir * (keyOf(a) - keyOf(b) || idOf(a) - idOf(b));
  const cmpKey = (a, c) => dir * (keyOf(a) - c.k || idOf(a) - c.id);
  let seq = items.slice().sort(cmp);
  if (inverted) seq.reverse();
  if (before != null) { const c = decodeCursor(before); seq = seq.filter((x) => cmpKey(x, c) < 0); }
  if (after != null) { const c = decodeCursor(after); seq = seq.filter((x) => cmpKey(x, c) > 0); }
  const page = seq.slice(0, limit);
  const hasPreviousPage = after != null || (page.length >= limit && inverted);
  const hasNextPage = before != null || (page.length >= limit && !inverted);
  const trimmed = page.slice(0, limit - 1);
  if (inverted) trimmed.reverse();
  const cursor = (x) => encodeCursor(keyOf(x), idOf(x));
  let rendered = null;
  const nodes = () => {
    if (!rendered) { rendered = trimmed.map(renderNode); if (onNodes) onNodes(rendered.length); }
    return rendered;
  };
  return {
    nodes,
    edges: () => nodes().map((n, i) => ({ cursor: cursor(trimmed[i]), node: n })),
    pageInfo: {
      hasNextPage, hasPreviousPage,
      startCursor: trimmed.length ? cursor(trimmed[0]) : null,
      endCursor: trimmed.length ? cursor(trimmed[trimmed.length - 1]) : null,
    },
  };
}

function sinceMs(v) { return v == null ? null : parseIso(v); }

class Api {
  constructor(store, renderer) {
    this.store = store;
    this.renderer = renderer;
    this.schema = loadSchema();
  }

  canSee(ctx, procNumber) {
    const p = ctx.token && ctx.token.procedures;
    return p === '*' || (Array.isArray(p) && p.map(Number).includes(procNumber));
  }

  dossiersConnection(ctx, proc, records, args) {
    const u = sinceMs(args.updatedSince);
    const c = sinceMs(args.createdSince);
    const revIdx = (id) => proc.revisions.findIndex((r) => r.id === id);
    let list = records;
    if (args.state != null) list = list.filter((d) => d.state === args.state);
    if (args.archived != null) list = list.filter((d) => d.archived === args.archived);
    if (u != null) list = list.filter((d) => d.updated >= u); // inclusive
    if (c != null) list = list.filter((d) => d.dateDepot >= c);
    if (args.revision != null) list = list.filter((d) => d.revIdx === revIdx(args.revision));
    if (args.minRevision != null) list = list.filter((d) => d.revIdx >= revIdx(args.minRevision));
    if (args.maxRevision != null) list = list.filter((d) => d.revIdx <= revIdx(args.maxRevision));
    // with updatedSince the order (and cursor) follow the update time, otherwise the deposit time
    const keyOf = u != null ? (d) => d.updated : (d) => d.dateDepot;
    return connection(list, keyOf, (d) => d.number, args, (d) => this.renderer.dossier(ctx, proc, d),
      (n) => { ctx.dossiersServed += n; });
  }

  deletedConnection(ctx, records, args) {
    const s = sinceMs(args.deletedSince);
    const list = s == null ? records : records.filter((r) => r.deletedMs >= s);
    return connection(list, (r) => r.deletedMs, (r) => r.deletedId, args, (r) => this.renderer.deletedDossier(r));
  }

  demarche(ctx, proc) {
    const R = this.renderer;
    return {
      id: proc.id, number: proc.number, title: proc.title, description: proc.description, state: proc.state,
      dateCreation: isoParis(proc.dateCreation), datePublication: isoParis(proc.datePublication), dateFermeture: null,
      dateDerniereModification: isoParis(proc.dateDerniereModification),
      activeRevision: () => R.revision(proc, proc.activeRevision),
      publishedRevision: () => R.revision(proc, proc.activeRevision),
      revisions: () => proc.revisions.map((rev) => R.revision(proc, rev)),
      groupeInstructeurs: ({ closed } = {}) => proc.groupes.filter((g) => closed == null || g.closed === closed),
      labels: proc.labels,
      dossiers: (args) => this.dossiersConnection(ctx, proc, [...proc.dossiers.values()], args),
      deletedDossiers: (args) => this.deletedConnection(ctx, proc.deleted, args),
      pendingDeletedDossiers: (args) => this.deletedConnection(ctx, proc.pendingDeleted, args),
    };
  }

  rootValue() {
    const store = this.store;
    return {
      demarche: ({ number }, ctx) => {
        const proc = store.getProcedure(number);
        if (!proc) throw gqlError('Demarche not found', 'not_found');
        if (!this.canSee(ctx, number)) throw gqlError('An object of type Demarche was hidden due to permissions', 'unauthorized');
        ctx.procedures.add(number);
        return this.demarche(ctx, proc);
      },
      dossier: ({ number }, ctx) => {
        const found = store.findDossier(number);
        if (!found) throw gqlError('Dossier not found', 'not_found');
        if (!this.canSee(ctx, found.proc.number)) throw gqlError('An object of type Dossier was hidden due to permissions', 'unauthorized');
        ctx.procedures.add(found.proc.number);
        ctx.dossiersServed += 1;
        return this.renderer.dossier(ctx, found.proc, found.d);
      },
      groupeInstructeur: ({ number }, ctx) => {
        const proc = store.getProcedure(Math.floor(number / 10));
        const g = proc && proc.groupes.find((x) => x.number === number);
        if (!g) throw gqlError('GroupeInstructeurWithDossiers not found', 'not_found');
        if (!this.canSee(ctx, proc.number)) throw gqlError('An object of type GroupeInstructeurWithDossiers was hidden due to permissions', 'unauthorized');
        ctx.procedures.add(proc.number);
        const gi = proc.groupes.indexOf(g);
        const mine = () => [...proc.dossiers.values()].filter((d) => d.groupeIdx === gi);
        const mineDeleted = (list) => list.filter((r) => r.groupeIdx === gi);
        return {
          ...g,
          dossiers: (args) => this.dossiersConnection(ctx, proc, mine(), args),
          deletedDossiers: (args) => this.deletedConnection(ctx, mineDeleted(proc.deleted), args),
          pendingDeletedDossiers: (args) => this.deletedConnection(ctx, mineDeleted(proc.pendingDeleted), args),
        };
      },
    };
  }

  /** Parse + validate; returns { document } or { errors }. */
  prepare(query) {
    let document;
    try {
      document = parse(query);
    } catch (e) {
      return { errors: [withCode(e, 'graphql_parse_failed')] };
    }
    const errors = validate(this.schema, document);
    if (errors.length) return { errors, document };
    return { document };
  }

  run(document, variableValues, operationName, ctx) {
    return execute({ schema: this.schema, document, rootValue: this.rootValue(), contextValue: ctx, variableValues, operationName });
  }
}

function withCode(err, code) {
  const j = err.toJSON ? err.toJSON() : { message: String(err.message) };
  return { ...j, extensions: { ...(j.extensions || {}), code } };
}

// --- depth and complexity ------------------------------------------------------
/** Operation to run (by name, or the only one). */
function pickOperation(document, operationName) {
  const ops = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  if (operationName) return ops.find((o) => o.name && o.name.value === operationName) || null;
  return ops.length === 1 ? ops[0] : null;
}

function skipped(node, variables) {
  for (const dir of node.directives || []) {
    const arg = dir.arguments && dir.arguments.find((a) => a.name.value === 'if');
    if (!arg) continue;
    const v = arg.value.kind === Kind.VARIABLE ? variables[arg.value.name.value] : arg.value.value;
    if (dir.name.value === 'skip' && v === true) return true;
    if (dir.name.value === 'include' && v === false) return true;
  }
  return false;
}

function argValue(field, name, variables) {
  const a = (field.arguments || []).find((x) => x.name.value === name);
  if (!a) return undefined;
  if (a.value.kind === Kind.VARIABLE) return variables[a.value.name.value];
  if (a.value.kind === Kind.INT) return Number(a.value.value);
  if (a.value.kind === Kind.NULL) return null;
  return a.value.value;
}

/**
 * Analyses the operation like graphql-ruby's QueryDepth and QueryComplexity:
 * - depth: nesting of fields (fragments flattened), introspection ignored;
 * - complexity: each field costs 1 plus its children; for abstract types the
 *   most expensive possible type counts; the nodes/edges of a *Connection are
 *   multiplied by the page size (first/last clamped to 100, default 100);
 *   Dossier.champs / Dossier.annotations are multiplied by `champListFactor`
 *   (graphql-ruby itself does not multiply lists; the factor calibrates the
 *   estimate so that a page of 100 fully selected dossiers costs ~37,600, the
 *   figure DS published).
 */
function analyse(schema, document, operationName, variables = {}, { champListFactor = 1 } = {}) {
  const op = pickOperation(document, operationName);
  if (!op) return { depth: 0, complexity: 0 };
  const fragments = {};
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;

  // collect the fields of a selection set that apply to runtime type `rt`
  const collect = (sel, rt, out) => {
    for (const s of sel.selections) {
      if (skipped(s, variables)) continue;
      if (s.kind === Kind.FIELD) out.push(s);
      else {
        const frag = s.kind === Kind.FRAGMENT_SPREAD ? fragments[s.name.value] : s;
        if (!frag) continue;
        const cond = frag.typeCondition ? schema.getType(frag.typeCondition.name.value) : null;
        if (!cond || cond === rt || (isAbstractType(cond) && schema.isSubType(cond, rt))) collect(frag.selectionSet, rt, out);
      }
    }
    return out;
  };

  const walk = (sel, parentType) => {
    const runtimes = isAbstractType(parentType) ? schema.getPossibleTypes(parentType) : [parentType];
    let best = { depth: 0, cost: 0 };
    for (const rt of runtimes) {
      let depth = 0; let cost = 0;
      for (const f of collect(sel, rt, [])) {
        const name = f.name.value;
        if (name.startsWith('__')) continue;
        const def = rt.getFields()[name];
        if (!def) continue;
        let childDepth = 0; let childCost = 0;
        const named = getNamedType(def.type);
        if (f.selectionSet) {
          if (/Connection$/.test(named.name)) {
            const size = Math.min(argValue(f, 'first', variables) ?? argValue(f, 'last', variables) ?? DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
            for (const cf of collect(f.selectionSet, named, [])) {
              const cdef = named.getFields()[cf.name.value];
              if (!cdef) continue;
              const sub = cf.selectionSet ? walk(cf.selectionSet, getNamedType(cdef.type)) : { depth: 0, cost: 0 };
              const mult = cf.name.value === 'nodes' || cf.name.value === 'edges' ? Math.max(size, 0) : 1;
              childCost += (1 + sub.cost) * mult;
              childDepth = Math.max(childDepth, 1 + sub.depth);
            }
          } else {
            const sub = walk(f.selectionSet, named);
            // lists of champs weigh `champListFactor` (calibration, see README); other lists 1
            const list = isListType(getNullableType(def.type));
            childCost = sub.cost * (list && named.name === 'Champ' && rt.name === 'Dossier' ? champListFactor : 1);
            childDepth = sub.depth;
          }
        }
        cost += 1 + childCost;
        depth = Math.max(depth, 1 + childDepth);
      }
      if (cost > best.cost) best.cost = cost;
      if (depth > best.depth) best.depth = depth;
    }
    return best;
  };
  const root = op.operation === 'mutation' ? schema.getMutationType() : schema.getQueryType();
  if (!root) return { depth: 0, complexity: 0 };
  const r = walk(op.selectionSet, root);
  return { depth: r.depth, complexity: r.cost, operation: op };
}

/** The root field and number argument of a query (demarche/dossier/groupeInstructeur), if any. */
function rootTarget(document, operationName, variables = {}) {
  const op = pickOperation(document, operationName);
  if (!op) return null;
  for (const s of op.selectionSet.selections) {
    if (s.kind === Kind.FIELD && ['demarche', 'dossier', 'groupeInstructeur'].includes(s.name.value)) {
      const v = argValue(s, 'number', variables);
      return v == null ? null : { field: s.name.value, number: Number(v) };
    }
  }
  return null;
}

/** Every root field's target (a batched check aliases many `demarche` fields). */
function rootTargets(document, operationName, variables = {}) {
  const op = pickOperation(document, operationName);
  if (!op) return [];
  const out = [];
  for (const s of op.selectionSet.selections) {
    if (s.kind === Kind.FIELD && ['demarche', 'dossier', 'groupeInstructeur'].includes(s.name.value)) {
      const v = argValue(s, 'number', variables);
      if (v != null) out.push({ field: s.name.value, number: Number(v) });
    }
  }
  return out;
}

module.exports = { Api, analyse, rootTarget, rootTargets, pickOperation, encodeCursor, decodeCursor, gqlError, withCode, MAX_PAGE_SIZE };
