'use strict';
// Server-wide state: settings, documents, API keys, counters, injected faults.

const { Doc } = require('./store');

// Defaults reproduce grist-core 1.7.x measured on this kind of machine (see README).
const DEFAULT_SETTINGS = {
  maxParallelPerDoc: 10,          // GRIST_MAX_PARALLEL_REQUESTS_PER_DOC; 0 = unlimited
  writeFixedMs: 12,               // cost of any write action bundle
  writePerRowMs: 0.2,             // + per added row (records, attachments)
  writePerUpdatedRowMs: 0.1,      // + per updated or removed row
  readFixedMs: 2,                 // cost of a read (GET)
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
    this.stats = { total: 0, byKind: {}, byStatus: {}, sent429: 0 };
    for (const doc of (this.docs || new Map()).values()) {
      doc.requests = 0; doc.sent429 = 0; doc.maxInFlight = doc.inFlight; doc.maxApiInFlight = doc.apiInFlight;
      doc.stats = { writes: 0, rowsAdded: 0, rowsUpdated: 0 };
    }
  }

  record(kind, status, doc) {
    this.stats.total++;
    this.stats.byKind[kind] = (this.stats.byKind[kind] || 0) + 1;
    this.stats.byStatus[status] = (this.stats.byStatus[status] || 0) + 1;
    if (status === 429) { this.stats.sent429++; }
    if (doc) {
      doc.requests++;
      if (status === 429) { doc.sent429++; }
    }
  }

  // First fault matching this request, consumed; or null.
  takeFault(docId, method, pathAndQuery) {
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i];
      if (f.doc && f.doc !== docId) { continue; }
      if (f.method && f.method.toUpperCase() !== method) { continue; }
      if (f.path && !pathAndQuery.includes(f.path)) { continue; }
      f.count--;
      f.used = (f.used || 0) + 1;
      if (f.count <= 0) { this.faults.splice(i, 1); }
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
        attachments: d.attachments.size,
        tables,
      };
    }
    return {
      requests: { total: this.stats.total, byKind: this.stats.byKind, byStatus: this.stats.byStatus },
      sent429: this.stats.sent429,
      settings: this.settings,
      faults: this.faults.map((f) => ({ ...f })),
      docs,
    };
  }
}

module.exports = { State, DEFAULT_SETTINGS };
