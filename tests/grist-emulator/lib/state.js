'use strict';
// Server-wide state: settings, documents, API keys, counters, injected faults.

const { Doc } = require('./store');
const { AccessTokens } = require('./tokens');

// Defaults reproduce grist-core 1.7.x measured on this kind of machine (see README).
// The write cost is per cell (grist-core 1.7.17, /work/shared/notes/grist-api.md):
// 8 ms + 0.02 ms per new row + 0.0044 ms per new cell; updates about half.
const DEFAULT_SETTINGS = {
  maxParallelPerDoc: 10,          // GRIST_MAX_PARALLEL_REQUESTS_PER_DOC; 0 = unlimited
  writeFixedMs: 8,                // cost of any write action bundle
  writePerRowMs: 0.02,            // + per added row (records, attachments)
  writePerCellMs: 0.0044,         // + per cell of an added row (fields and require values sent)
  writePerUpdatedRowMs: 0.01,     // + per updated or removed row
  writePerUpdatedCellMs: 0.0022,  // + per cell whose value an update changes, per cell of a removed row
  writePerUnchangedCellMs: 0.0011, // + per cell an update sends with the value it already has (trimmed by Grist)
  writePerColumnMs: 1,            // + per column created (POST/PUT columns, POST tables): not measured
  parseMsPerMB: 10,               // JSON body parsing, one request at a time server-wide, before admission
  readFixedMs: 2,                 // cost of a read (GET)
  maxUrlBytes: 0,                 // > 0: a proxy in front answers 414 text/html above this URL length
  readsWaitForWrites: false,      // reads do not queue behind writes (Grist reads from SQLite)
  rejectCostMs: 0,                // congestion model: ms each 429 adds to the doc's write pipeline
  rejectDelayMs: 0,               // congestion model: ms before a 429 is sent (0 = at once, as Grist)
  bodyLimitBytes: 1048576,        // express.json({limit: '1mb'}) = 1024*1024 bytes
};

const ACCESS_LEVELS = ['viewers', 'editors', 'owners'];

class State {
  constructor() {
    this.settings = { ...DEFAULT_SETTINGS };
    this.docs = new Map();
    this.keys = new Map();          // key -> Map(docId or '*' -> access)
    this.faults = [];
    this.tokens = new AccessTokens(); // document access tokens (?auth=), tokens.js
    this.parserBusyUntil = 0;       // virtual clock of the JSON parser (Node's one thread)
    this.resetStats();
  }

  applySettings(obj) {
    const unknown = [];
    for (const [k, v] of Object.entries(obj || {})) {
      if (!(k in DEFAULT_SETTINGS)) { unknown.push(k); continue; }
      if (typeof DEFAULT_SETTINGS[k] === 'boolean') {
        this.settings[k] = Boolean(v);
      } else {
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0) { throw new Error(`setting ${k} must be a non-negative number`); }
        this.settings[k] = n;
      }
    }
    return unknown;
  }

  addDoc(id, { keys = [], name } = {}) {
    if (typeof id !== 'string' || !id) { throw new Error('document id must be a non-empty string'); }
    let doc = this.docs.get(id);
    if (!doc) { doc = new Doc(id, name); this.docs.set(id, doc); }
    for (const key of keys) { this.grant(key, id, 'owners'); }
    return doc;
  }

  grant(key, docId, access = 'owners') {
    if (typeof key !== 'string' || !key) { throw new Error('API key must be a non-empty string'); }
    if (!ACCESS_LEVELS.includes(access)) { throw new Error(`access must be one of ${ACCESS_LEVELS.join(', ')}`); }
    let m = this.keys.get(key);
    if (!m) { m = new Map(); this.keys.set(key, m); }
    m.set(docId, access);
  }

  // Registers a key with no document (it authenticates, but sees nothing).
  addKey(key) { if (!this.keys.has(key)) { this.keys.set(key, new Map()); } }

  access(key, docId) {
    const m = this.keys.get(key);
    if (!m) { return null; }
    return m.get(docId) || m.get('*') || null;
  }

  loadConfig(cfg) {
    if (cfg.settings) { this.applySettings(cfg.settings); }
    const top = { ...cfg };
    delete top.docs; delete top.users; delete top.settings;
    this.applySettings(top);
    for (const d of cfg.docs || []) { this.addDoc(d.id, { keys: d.keys || [], name: d.name }); }
    for (const u of cfg.users || []) {
      this.addKey(u.key);
      for (const entry of u.docs || []) {
        if (typeof entry === 'string') { this.grant(u.key, entry, u.access || 'owners'); } else {
          this.grant(u.key, entry.id, entry.access || u.access || 'owners');
        }
      }
    }
  }

  resetStats() {
    this.stats = { total: 0, byKind: {}, byStatus: {}, sent429: 0, parseMs: 0 };
    for (const doc of (this.docs || new Map()).values()) { doc.resetStats(); }
  }

  // One answered request. pathLabel: "METHOD /rest/of/path" under /api/docs/{doc}.
  record(kind, status, doc, pathLabel, bytes = 0) {
    this.stats.total++;
    this.stats.byKind[kind] = (this.stats.byKind[kind] || 0) + 1;
    this.stats.byStatus[status] = (this.stats.byStatus[status] || 0) + 1;
    if (status === 429) { this.stats.sent429++; }
    if (doc) {
      doc.requests++;
      if (status === 429) { doc.sent429++; }
      doc.byStatus[status] = (doc.byStatus[status] || 0) + 1;
      if (pathLabel) {
        const p = doc.pathEntry(pathLabel);
        p.requests++;
        p.bytes += bytes;
        p.byStatus[status] = (p.byStatus[status] || 0) + 1;
      }
    }
  }

  // First fault matching this request, consumed; or null.
  takeFault(docId, method, pathAndQuery, restPath) {
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i];
      if (f.doc && f.doc !== docId) { continue; }
      if (f.method && f.method.toUpperCase() !== method) { continue; }
      if (f.path && !pathAndQuery.includes(f.path)) { continue; }
      if (f.pattern && !new RegExp(f.pattern).test(restPath)) { continue; }
      f.used = (f.used || 0) + 1;
      if (f.count > 0) {                 // count -1: every matching request, until deleted
        f.count--;
        if (f.count === 0) { this.faults.splice(i, 1); }
      }
      return f;
    }
    return null;
  }

  snapshot() {
    const docs = {};
    for (const [id, d] of this.docs) {
      const tables = {};
      for (const [tid, t] of d.tables) { tables[tid] = t.rows.size; }
      docs[id] = {
        inFlight: d.inFlight,
        occupied: d.occupied,
        maxInFlight: d.maxInFlight,
        maxApiInFlight: d.maxApiInFlight,
        requests: d.requests,
        sent429: d.sent429,
        writeQueue: d.writeQueue.length + (d.writing ? 1 : 0),
        writes: d.stats.writes,
        rowsAdded: d.stats.rowsAdded,
        rowsUpdated: d.stats.rowsUpdated,
        rowsRemoved: d.stats.rowsRemoved,
        cellsAdded: d.stats.cellsAdded,
        cellsUpdated: d.stats.cellsUpdated,
        cellsUnchanged: d.stats.cellsUnchanged,
        columnsAdded: d.stats.columnsAdded,
        busyMs: Math.round(d.stats.busyMs * 1000) / 1000,
        byStatus: d.byStatus,
        paths: d.paths,
        mode: d.mode,
        attachments: d.attachments.size,
        tables,
      };
    }
    return {
      requests: { total: this.stats.total, byKind: this.stats.byKind, byStatus: this.stats.byStatus },
      sent429: this.stats.sent429,
      parseMs: Math.round(this.stats.parseMs * 1000) / 1000,
      settings: this.settings,
      faults: this.faults.map((f) => ({ ...f })),
      docs,
    };
  }
}

module.exports = { State, DEFAULT_SETTINGS };
