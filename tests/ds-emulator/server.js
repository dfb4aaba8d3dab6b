#!/usr/bin/env node
'use strict';
// Démarches Simplifiées GraphQL API emulator for the ds2grist tests.
//
//   node server.js [--host 127.0.0.1] [--port 0] [--port-file PATH] [--config PATH]
//                  [--procedures N] [--dossiers N] [--seed N] [--token SECRET] [--rate-limit N]
//
// POST /api/v2/graphql is the API; /admin/* drives the data, faults and
// counters (no auth). See README.md.
// graphql-js skips its (slow) development-mode instanceof checks in production mode
if (!process.env.NODE_ENV) process.env.NODE_ENV = 'production';
const http = require('http');
const fs = require('fs');
const crypto = require('crypto');
const { Store } = require('./lib/store');
const { Renderer, storageBytes } = require('./lib/render');
const { Api, analyse, rootTarget, rootTargets, withCode } = require('./lib/api');
const { isoParis } = require('./lib/util');
const { parse } = require('graphql');

const FULL_QUERY = fs.readFileSync(`${__dirname}/full-dossier.graphql`, 'utf8');
const UNAUTHENTICATED = 'Without a token, only the public getDemarcheDescriptor query and introspection are allowed';

// --- configuration -------------------------------------------------------------
function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, inline] = a.slice(2).split('=', 2);
    out[k] = inline !== undefined ? inline : argv[++i];
    if (out[k] === undefined) throw new Error(`missing value for --${k}`);
  }
  return out;
}

function buildConfig(args) {
  const cfg = args.config ? JSON.parse(fs.readFileSync(args.config, 'utf8')) : {};
  const settings = {
    seed: Number(args.seed ?? cfg.seed ?? 1),
    rateLimitPerMinute: Number(args['rate-limit'] ?? cfg.rateLimitPerMinute ?? 400),
    maxComplexity: cfg.maxComplexity ?? 60000,
    maxDepth: cfg.maxDepth ?? 15,
    champListFactor: cfg.champListFactor ?? 4,
    serverTimeoutMs: cfg.serverTimeoutMs ?? 30000,
    timeoutResponse: cfg.timeoutResponse || 'graphql', // 'graphql' (DS app) or 'http504' (proxy)
    latency: { baseMs: 0, perDossierMs: 0, ...(cfg.latency || {}) },
    fileBaseUrl: cfg.fileBaseUrl || null, // null: fake https host; "self": served by the emulator
    fileUrlTtlS: cfg.fileUrlTtlS ?? 3600, // lifetime of File.url; <= 0: expired when rendered
    fileLatencyMs: cfg.fileLatencyMs ?? 0, // a download's answer waits this long (slow storage)
  };
  // {first, count, dossiers}: procedures generated on first use (10,000 held cheaply)
  const lazyProcedures = args['lazy-procedures'] != null
    ? { first: Number(args['lazy-first'] ?? 10001), count: Number(args['lazy-procedures']), dossiers: Number(args['lazy-dossiers'] ?? 0) }
    : cfg.lazyProcedures || null;
  let procedures = cfg.procedures || [];
  if (args.procedures != null || args.dossiers != null) {
    const n = Number(args.procedures ?? 1);
    const m = Number(args.dossiers ?? 100);
    procedures = Array.from({ length: n }, (_, i) => ({ number: 1001 + i, dossiers: m }));
  }
  if (!procedures.length && !lazyProcedures) procedures = [{ number: 1001, dossiers: 100 }];
  let tokens = (cfg.tokens || []).map((t) => ({ ...t }));
  if (args.token != null || !tokens.length) {
    tokens.push({ name: 'default', secret: args.token ?? 'ds-emulator-token', procedures: '*' });
  }
  return { settings, procedures, lazyProcedures, tokens, host: args.host || '127.0.0.1', port: Number(args.port ?? 0), portFile: args['port-file'] };
}

// --- counters --------------------------------------------------------------------
class Counters {
  constructor() { this.reset(); }
  reset() {
    this.total = 0; this.byToken = {}; this.byOperation = {}; this.byStatus = {}; this.byProcedure = {};
    this.byTokenOperation = {}; // token name -> operation name -> requests
    this.maxPerTokenPerMinute = {}; this.dossiersServed = 0; this.windows = new Map();
    // Requests about one procedure being answered at the same time: a client that
    // polls each procedure from one place at a time never goes above 1.
    this.inFlightPerProcedure = new Map(); this.maxConcurrentPerProcedure = { max: 0 };
    // Per GraphQL operation: bytes of the answers and milliseconds from arrival to answer
    // (simulated latency included), so that a client's mean page size and time can be read.
    this.bytesByOperation = {}; this.msByOperation = {};
  }
  answered(res, payload) {
    if (!res.operation) return;
    this.inc(this.bytesByOperation, res.operation, Buffer.byteLength(payload));
    if (res.startedAt) this.inc(this.msByOperation, res.operation, Number(process.hrtime.bigint() - res.startedAt) / 1e6);
  }
  procedureArrival(procedure, res) {
    const key = String(procedure);
    const n = (this.inFlightPerProcedure.get(key) || 0) + 1;
    this.inFlightPerProcedure.set(key, n);
    this.maxConcurrentPerProcedure[key] = Math.max(this.maxConcurrentPerProcedure[key] || 0, n);
    this.maxConcurrentPerProcedure.max = Math.max(this.maxConcurrentPerProcedure.max, n);
    res.once('close', () => this.inFlightPerProcedure.set(key, this.inFlightPerProcedure.get(key) - 1));
  }
  inc(map, key, n = 1) { map[key] = (map[key] || 0) + n; }
  /** Sliding 60 s window per token: remembers the highest count ever seen. */
  arrival(tokenName, now) {
    this.total++;
    this.inc(this.byToken, tokenName);
    let w = this.windows.get(tokenName);
    if (!w) { w = []; this.windows.set(tokenName, w); }
    w.push(now);
    while (w.length && w[0] <= now - 60000) w.shift();
    this.maxPerTokenPerMinute[tokenName] = Math.max(this.maxPerTokenPerMinute[tokenName] || 0, w.length);
  }
  toJSON() {
    const { total, byToken, byOperation, byTokenOperation, byStatus, byProcedure, maxPerTokenPerMinute, dossiersServed, maxConcurrentPerProcedure, bytesByOperation } = this;
    const msByOperation = Object.fromEntries(Object.entries(this.msByOperation).map(([k, v]) => [k, Math.round(v)]));
    return { total, byToken, byOperation, byTokenOperation, byStatus, byProcedure, maxPerTokenPerMinute, dossiersServed, maxConcurrentPerProcedure, bytesByOperation, msByOperation };
  }
}

// --- emulator ----------------------------------------------------------------------
class Emulator {
  constructor(config) {
    this.config = config;
    this.settings = config.settings;
    this.tokens = config.tokens;
    this.store = new Store(this.settings.seed);
    for (const p of config.procedures) this.store.createProcedure(p);
    if (config.lazyProcedures) this.store.addLazyProcedures(config.lazyProcedures);
    this.renderer = new Renderer(this.store);
    this.api = new Api(this.store, this.renderer);
    this.counters = new Counters();
    this.faults = [];
    this.rate = new Map(); // Authorization header -> { window, count }
    this.timers = new Set();
  }

  fileBaseUrl() {
    const b = this.settings.fileBaseUrl;
    if (b === 'self') return `http://${this.config.host}:${this.port}`;
    return b;
  }

  // ---- HTTP plumbing ----
  send(res, status, body, headers = {}) {
    if (res.writableEnded || res.destroyed) return;
    this.counters.inc(this.counters.byStatus, String(status));
    const isText = typeof body === 'string';
    const payload = isText ? body : JSON.stringify(body);
    // Rails' Rack::Runtime header: seconds spent in the application (simulated delays excluded)
    if (res.startedAt && res.appTime == null) res.appTime = Number(process.hrtime.bigint() - res.startedAt) / 1e9;
    if (res.appTime != null) headers = { 'X-Runtime': res.appTime.toFixed(6), ...headers };
    this.counters.answered(res, payload);
    res.writeHead(status, {
      'Content-Type': isText ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(payload), ...headers,
    });
    res.end(payload);
  }

  sendRaw(res, status, payload) {
    if (res.writableEnded || res.destroyed) return;
    this.counters.inc(this.counters.byStatus, String(status));
    this.counters.answered(res, payload);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(payload), 'X-Runtime': res.appTime.toFixed(6) });
    res.end(payload);
  }

  sendAdmin(res, status, body) {
    if (res.writableEnded) return;
    const payload = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(payload) });
    res.end(payload);
  }

  later(ms, fn) {
    const t = setTimeout(() => { this.timers.delete(t); fn(); }, ms);
    this.timers.add(t);
    return t;
  }

  readBody(req) {
    return new Promise((resolve, reject) => {
      const chunks = []; let size = 0;
      req.on('data', (c) => { size += c.length; if (size > 5e6) { reject(new Error('body too large')); req.destroy(); } else chunks.push(c); });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }

  async handle(req, res) {
    const url = new URL(req.url, 'http://x');
    try {
      if (url.pathname === '/api/v2/graphql' || url.pathname === '/graphql') {
        if (req.method !== 'POST') return this.send(res, 405, 'Method Not Allowed\n');
        return await this.graphql(req, res);
      }
      if (url.pathname.startsWith('/admin/') || url.pathname === '/admin') return await this.admin(req, res, url);
      if (url.pathname.startsWith('/storage/') && req.method === 'GET') return this.storage(res, url);
      if (url.pathname === '/health') return this.sendAdmin(res, 200, { ok: true });
      return this.sendAdmin(res, 404, { error: 'not found' });
    } catch (e) {
      const status = e.status || 500;
      if (url.pathname.startsWith('/admin')) return this.sendAdmin(res, status, { error: e.message });
      return this.send(res, 500, { errors: [{ message: 'Internal Server Error', extensions: { exception: { id: crypto.randomUUID() } } }], data: null });
    }
  }

  // ---- the API endpoint ----
  tokenFor(req) {
    const h = req.headers.authorization || '';
    const m = /^Bearer\s+(.+)$/i.exec(h) || /^Token\s+token="?([^",]+)"?/i.exec(h);
    const secret = m ? m[1].trim() : null;
    return { header: h, secret, token: secret ? this.tokens.find((t) => t.secret === secret) : null };
  }

  async graphql(req, res) {
    const now = Date.now();
    res.startedAt = process.hrtime.bigint();
    const { header, secret, token } = this.tokenFor(req);
    const tokenName = token ? token.name : secret ? 'unknown' : 'anonymous';
    this.counters.arrival(tokenName, now);
    const raw = await this.readBody(req);

    let body = null; let bodyError = null;
    try { body = raw ? JSON.parse(raw) : {}; } catch (e) { bodyError = e; }
    const query = body && typeof body.query === 'string' ? body.query : null;
    let variables = body && body.variables;
    if (typeof variables === 'string') { try { variables = JSON.parse(variables || '{}'); } catch { variables = {}; } }
    variables = variables && typeof variables === 'object' ? variables : {};
    const operationName = (body && body.operationName) || null;
    let document = null;
    if (query) { try { document = parse(query); } catch { document = null; } }
    const procedure = document ? this.procedureOf(rootTarget(document, operationName, variables)) : null;
    const op = operationName || '(anonymous)';
    res.operation = op;
    this.counters.inc(this.counters.byOperation, op);
    this.counters.inc(this.counters.byTokenOperation[tokenName] = this.counters.byTokenOperation[tokenName] || {}, op);
    // A request naming several procedures (a batched check) counts for each of them in
    // byProcedure; "in flight at once" is about requests on one procedure alone.
    const targets = document ? rootTargets(document, operationName, variables) : [];
    if (targets.length > 1) {
      for (const t of targets) {
        const pn = this.procedureOf(t);
        if (pn != null) this.counters.inc(this.counters.byProcedure, String(pn));
      }
    } else if (procedure != null) {
      this.counters.inc(this.counters.byProcedure, String(procedure));
      // A check (checkProcedures) is a read of a procedure's dates, batched, taken without
      // the procedure's lease; a batch of one names one procedure but is not a poll of it.
      if (op !== 'checkProcedures') this.counters.procedureArrival(procedure, res);
    }

    // 1. rate limit (Rack::Attack style: fixed 60 s windows aligned to the epoch, per Authorization header)
    const key = header || `ip:${req.socket.remoteAddress}`;
    const windowIdx = Math.floor(now / 60000);
    let slot = this.rate.get(key);
    if (!slot || slot.window !== windowIdx) { slot = { window: windowIdx, count: 0 }; this.rate.set(key, slot); }
    slot.count++;
    if (slot.count > this.settings.rateLimitPerMinute) {
      const resetEpoch = (windowIdx + 1) * 60;
      return this.send(res, 429, 'Retry later\n', {
        'Retry-After': String(Math.max(1, Math.ceil(((windowIdx + 1) * 60000 - now) / 1000))),
        'RateLimit-Limit': String(this.settings.rateLimitPerMinute),
        'RateLimit-Remaining': '0',
        'RateLimit-Reset': String(resetEpoch),
      });
    }

    // 2. authentication
    if (!token) return this.send(res, 401, { errors: [{ message: UNAUTHENTICATED, extensions: { code: 'unauthorized' } }], data: null });
    if (token.expired) return this.send(res, 401, { errors: [{ message: 'Token expired', extensions: { code: 'unauthorized' } }], data: null });
    if (token.networkDenied) return this.send(res, 403, { errors: [{ message: 'Forbidden: this network is not allowed to use this token', extensions: { code: 'forbidden' } }], data: null });

    if (bodyError) return this.send(res, 400, { errors: [{ message: bodyError.message, extensions: { code: 'bad_request' } }], data: null });
    if (!query) return this.send(res, 200, { errors: [{ message: 'No query string was present', extensions: { code: 'bad_request' } }] });

    // 3. injected faults
    const fault = this.takeFault(token.name, procedure, operationName);
    let extraLatency = 0;
    if (fault) {
      switch (fault.kind) {
        case 'http500':
          return this.send(res, 500, { errors: [{ message: fault.message || 'Internal Server Error', extensions: { exception: { id: crypto.randomUUID() } } }], data: null });
        case 'hang': {
          const t = this.later(this.settings.serverTimeoutMs, () => this.send(res, 504, 'Gateway Timeout\n'));
          res.on('close', () => { clearTimeout(t); this.timers.delete(t); });
          return undefined;
        }
        case 'graphqlError':
          return this.send(res, 200, { data: null, errors: [{ message: fault.message || 'Internal server error', extensions: { code: 'internal_server_error' } }] });
        case 'latency': extraLatency = fault.latencyMs || 1000; break;
        default: break;
      }
    }

    // 4. parse / validate / depth / complexity
    const prepared = this.api.prepare(query);
    if (prepared.errors) {
      return this.send(res, 200, { errors: prepared.errors.map((e) => (e.toJSON ? e.toJSON() : e)) });
    }
    const a = analyse(this.api.schema, prepared.document, operationName, variables, { champListFactor: this.settings.champListFactor });
    if (a.depth > this.settings.maxDepth) {
      return this.send(res, 200, { errors: [{ message: `Query has depth of ${a.depth}, which exceeds max depth of ${this.settings.maxDepth}` }] });
    }
    if ((fault && fault.kind === 'complexity') || a.complexity > this.settings.maxComplexity) {
      const n = Math.max(a.complexity, fault && fault.kind === 'complexity' ? this.settings.maxComplexity + 1 : 0);
      return this.send(res, 200, { errors: [{ message: `Query has complexity of ${n}, which exceeds max complexity of ${this.settings.maxComplexity}` }] });
    }

    // 5. execute
    const ctx = { token, procedures: new Set(), dossiersServed: 0, fileBaseUrl: this.fileBaseUrl(), fileTtlS: this.settings.fileUrlTtlS };
    const result = await this.api.run(prepared.document, variables, operationName, ctx);
    const out = {};
    if ('data' in result) out.data = result.data;
    if (result.errors && result.errors.length) out.errors = result.errors.map(formatError);

    // 6. simulated processing time and server timeout
    const lat = this.settings.latency;
    const work = (lat.baseMs || 0) + (lat.perDossierMs || 0) * ctx.dossiersServed;
    if (work > this.settings.serverTimeoutMs || (fault && fault.kind === 'timeout')) {
      return this.later(this.settings.serverTimeoutMs, () => this.sendTimeout(res, prepared.document, operationName));
    }
    this.counters.dossiersServed += ctx.dossiersServed;
    if (fault && fault.kind === 'partialData') makePartial(out, fault.message);
    const delay = work + extraLatency;
    const payload = JSON.stringify(out); // serialise now so X-Runtime measures the real work
    res.appTime = Number(process.hrtime.bigint() - res.startedAt) / 1e9;
    if (delay > 0) return this.later(delay, () => this.sendRaw(res, 200, payload));
    return this.sendRaw(res, 200, payload);
  }

  /** graphql-ruby's Timeout: the field being resolved errors out; non-null
   *  parents propagate the null, so `data` ends up null for demarche queries. */
  sendTimeout(res, document, operationName) {
    if (this.settings.timeoutResponse === 'http504') return this.send(res, 504, 'Gateway Timeout\n');
    const op = document.definitions.find((d) => d.kind === 'OperationDefinition' && (!operationName || (d.name && d.name.value === operationName)));
    const root = op && op.selectionSet.selections.find((s) => s.kind === 'Field');
    const rootName = root ? root.name.value : 'demarche';
    const sub = root && root.selectionSet && root.selectionSet.selections.find((s) => s.kind === 'Field' && /ossiers$/.test(s.name.value));
    const pathArr = sub ? [rootName, sub.name.value] : [rootName];
    const typeName = { demarche: 'Demarche', groupeInstructeur: 'GroupeInstructeurWithDossiers', dossier: 'Query' }[rootName] || 'Query';
    const fieldLabel = sub ? `${typeName}.${sub.name.value}` : `Query.${rootName}`;
    const node = sub || root;
    const locations = node && node.loc ? [{ line: node.loc.startToken.line, column: node.loc.startToken.column }] : undefined;
    return this.send(res, 200, { data: null, errors: [{ message: `Timeout on ${fieldLabel}`, locations, path: pathArr, extensions: { code: 'timeout' } }] });
  }

  /** Procedure a request is about (for counters and fault matching). */
  procedureOf(target) {
    if (!target || Number.isNaN(target.number)) return null;
    if (target.field === 'demarche') return target.number;
    if (target.field === 'groupeInstructeur') return Math.floor(target.number / 10);
    const found = this.store.findDossier(target.number);
    return found ? found.proc.number : null;
  }

  takeFault(tokenName, procedure, operationName) {
    for (const f of this.faults) {
      const m = f.match || {};
      if (m.token != null && m.token !== tokenName) continue;
      if (m.procedure != null && Number(m.procedure) !== procedure) continue;
      if (m.operationName != null && m.operationName !== operationName) continue;
      if (f.count === 0) continue;
      if (f.count > 0) f.count--;
      f.used = (f.used || 0) + 1;
      return f;
    }
    return null;
  }

  // GET /storage/<blob>/<filename>?expires=..: the file's bytes (those its checksum and size
  // describe) until expires, then 403 as object storage answers; an unknown blob is 404.
  storage(res, url) {
    const expires = Number(url.searchParams.get('expires'));
    this.counters.inc(this.counters.byOperation, 'storage');
    if (!expires || expires * 1000 < Date.now()) {
      res.writeHead(403, { 'Content-Type': 'application/xml' });
      return res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
    }
    const blob = url.pathname.split('/')[2] || '';
    const content = storageBytes(blob);
    if (!content) {
      res.writeHead(404, { 'Content-Type': 'application/xml' });
      return res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code></Error>');
    }
    const send = () => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': content.length });
      res.end(content);
    };
    if (this.settings.fileLatencyMs > 0) return this.later(this.settings.fileLatencyMs, send);
    return send();
  }

  // ---- admin API ----
  async admin(req, res, url) {
    const raw = req.method === 'GET' || req.method === 'DELETE' ? '' : await this.readBody(req);
    let body = {};
    if (raw) { try { body = JSON.parse(raw); } catch (e) { return this.sendAdmin(res, 400, { error: `invalid JSON: ${e.message}` }); } }
    const parts = url.pathname.split('/').filter(Boolean).slice(1); // drop "admin"
    const M = req.method;
    const S = this.store;
    const err = (status, message) => Object.assign(new Error(message), { status });
    const procOf = (n) => { const p = S.getProcedure(Number(n)); if (!p) throw err(404, `procedure ${n} not found`); return p; };
    const dossierOf = (p, n) => { const d = p.dossiers.get(Number(n)); if (!d) throw err(404, `dossier ${n} not found in procedure ${p.number}`); return d; };
    const ok = (b, status = 200) => this.sendAdmin(res, status, b);
    const route = `${M} /${parts.map((x, i) => (i === 1 || i === 3) && /^[^/]+$/.test(x) && parts[0] === 'procedures' ? ':' : x).join('/')}`;

    switch (route) {
      case 'GET /counters': return ok(this.counters.toJSON());
      case 'POST /counters/reset': this.counters.reset(); return ok({ ok: true });
      case 'GET /config': return ok(this.settings);
      case 'POST /config': {
        for (const k of ['rateLimitPerMinute', 'maxComplexity', 'maxDepth', 'serverTimeoutMs', 'champListFactor', 'timeoutResponse', 'fileBaseUrl', 'fileUrlTtlS', 'fileLatencyMs']) {
          if (body[k] !== undefined) this.settings[k] = body[k];
        }
        if (body.latency) this.settings.latency = { ...this.settings.latency, ...body.latency };
        if (body.rateLimitPerMinute !== undefined) this.rate.clear();
        return ok(this.settings);
      }
      case 'GET /faults': return ok(this.faults);
      case 'POST /faults': {
        const kinds = ['latency', 'http500', 'hang', 'graphqlError', 'partialData', 'complexity', 'timeout'];
        if (!kinds.includes(body.kind)) throw err(400, `kind must be one of ${kinds.join(', ')}`);
        const f = { id: this.faults.length + 1, match: body.match || {}, kind: body.kind, count: body.count ?? -1, latencyMs: body.latencyMs, message: body.message };
        this.faults.push(f);
        return ok(f, 201);
      }
      case 'DELETE /faults': this.faults = []; return ok({ ok: true });
      case 'POST /tokens': {
        if (!body.name || !body.secret) throw err(400, 'name and secret are required');
        const t = { name: body.name, secret: body.secret, procedures: body.procedures ?? '*', expired: !!body.expired, networkDenied: !!body.networkDenied };
        this.tokens = this.tokens.filter((x) => x.name !== t.name);
        this.tokens.push(t);
        return ok(t, 201);
      }
      case 'GET /tokens': return ok(this.tokens);
      case 'GET /procedures':
        if (url.searchParams.get('summary')) return ok({ generated: S.procedures.size, lazy: S.lazyCount() });
        return ok([...S.procedures.values()].map((p) => ({ number: p.number, title: p.title, dossiers: p.dossiers.size, deleted: p.deleted.length, revisions: p.revisions.length })));
      case 'POST /procedures': {
        const p = S.createProcedure({ number: body.number, dossiers: body.dossiers ?? 0, title: body.title, deleted: body.deleted ?? 0, champs: body.champs });
        return ok({ number: p.number, id: p.id, dossiers: p.dossiers.size }, 201);
      }
      case 'GET /procedures/:/dossiers': {
        const p = procOf(parts[1]);
        const list = [...p.dossiers.values()].sort((a, b) => a.number - b.number);
        return ok({
          dossiers: list.map((d) => ({ number: d.number, dateDerniereModification: isoParis(d.updated), updatedAtMs: d.updated, state: d.state, archived: d.archived, labels: d.labels.map((i) => p.labels[i].name) })),
          deleted: p.deleted.map((r) => ({ number: r.number, dateSupression: isoParis(r.deletedMs), state: r.state, reason: r.reason })),
          pendingDeleted: p.pendingDeleted.map((r) => ({ number: r.number, dateSupression: isoParis(r.deletedMs), state: r.state, reason: r.reason })),
        });
      }
      case 'POST /procedures/:/dossiers': {
        const p = procOf(parts[1]);
        const d = S.createDossier(p, body);
        return ok({ number: d.number, id: Buffer.from(`Dossier-${d.number}`).toString('base64'), dateDerniereModification: isoParis(d.updated) }, 201);
      }
      case 'GET /procedures/:/dossiers/:': {
        const p = procOf(parts[1]); dossierOf(p, parts[3]);
        const ctx = { token: { procedures: '*' }, procedures: new Set(), dossiersServed: 0, fileBaseUrl: this.fileBaseUrl(), fileTtlS: this.settings.fileUrlTtlS };
        const r = await this.api.run(parse(FULL_QUERY), { dossierNumber: Number(parts[3]) }, 'getDossier', ctx);
        if (r.errors) throw err(500, r.errors.map((e) => e.message).join('; '));
        return ok(r.data.dossier);
      }
      case 'PATCH /procedures/:/dossiers/:': {
        const p = procOf(parts[1]); const d = dossierOf(p, parts[3]);
        S.patchDossier(p, d, body);
        return ok({ number: d.number, dateDerniereModification: isoParis(d.updated), updatedAtMs: d.updated });
      }
      case 'DELETE /procedures/:/dossiers/:': {
        const p = procOf(parts[1]); const d = dossierOf(p, parts[3]);
        const rec = S.deleteDossier(p, d, url.searchParams.get('reason') || 'user_request', /^(1|true)$/.test(url.searchParams.get('pending') || ''));
        return ok({ number: rec.number, dateSupression: isoParis(rec.deletedMs), reason: rec.reason });
      }
      case 'POST /procedures/:/touch': {
        const p = procOf(parts[1]);
        return ok({ numbers: S.touch(p, Number(body.count ?? 1)) });
      }
      case 'POST /procedures/:/champ-descriptors': {
        const p = procOf(parts[1]);
        if (!body.type) throw err(400, 'type is required');
        const d = S.addDescriptor(p, body);
        return ok({ id: d.id, label: d.label, type: d.__typename, revision: p.activeRevision.id }, 201);
      }
      case 'PATCH /procedures/:/champ-descriptors/:': {
        const p = procOf(parts[1]);
        S.renameDescriptor(p, decodeURIComponent(parts[3]), body.label);
        return ok({ id: decodeURIComponent(parts[3]), label: body.label, revision: p.activeRevision.id });
      }
      default: return ok({ error: `no admin route ${M} ${url.pathname}` }, 404);
    }
  }

  listen() {
    return new Promise((resolve) => {
      this.server = http.createServer((req, res) => { this.handle(req, res); });
      this.server.keepAliveTimeout = 5000;
      this.server.listen(this.config.port, this.config.host, () => {
        this.port = this.server.address().port;
        resolve(this.port);
      });
    });
  }

  close() {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.server) { this.server.close(); if (this.server.closeAllConnections) this.server.closeAllConnections(); }
  }
}

function formatError(e) {
  const j = e.toJSON ? e.toJSON() : { message: e.message };
  if (!j.extensions || !j.extensions.code) return withCode(e, 'internal_server_error');
  return j;
}

/** partialData fault: the last returned dossier is nulled and a root-level error added. */
function makePartial(out, message) {
  const msg = message || 'Internal server error';
  const conn = out.data && out.data.demarche && out.data.demarche.dossiers;
  if (conn && Array.isArray(conn.nodes) && conn.nodes.length) {
    const i = conn.nodes.length - 1;
    conn.nodes[i] = null;
    (out.errors = out.errors || []).push({ message: msg, path: ['demarche', 'dossiers', 'nodes', i], extensions: { code: 'internal_server_error' } });
  } else {
    (out.errors = out.errors || []).push({ message: msg, extensions: { code: 'internal_server_error' } });
  }
}

async function main() {
  const config = buildConfig(parseArgs(process.argv.slice(2)));
  const emu = new Emulator(config);
  const port = await emu.listen();
  if (config.portFile) {
    fs.writeFileSync(`${config.portFile}.tmp`, `${port}\n`);
    fs.renameSync(`${config.portFile}.tmp`, config.portFile);
  }
  process.stdout.write(`ds-emulator listening on http://${config.host}:${port}\n`);
  const stop = () => { emu.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) {
  main().catch((e) => { process.stderr.write(`ds-emulator: ${e.stack || e}\n`); process.exit(2); });
}

module.exports = { Emulator, buildConfig, parseArgs };
