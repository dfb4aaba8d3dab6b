'use strict';
// Admin interface under /admin (no auth, JSON): stats, data dumps, runtime configuration,
// slot occupation and fault injection. Not part of Grist.

const types = require('./types');
const { ApiError } = require('./errors');
const { sendJson, sendError, readBody, parseJsonBody, hasBody } = require('./http');

const ADMIN_BODY_LIMIT = 64 * 1024 * 1024;

async function jsonBody(req) {
  if (!hasBody(req)) { return {}; }
  return parseJsonBody(await readBody(req, ADMIN_BODY_LIMIT));
}

function getDoc(state, docId) {
  const doc = state.docs.get(docId);
  if (!doc) { throw new ApiError(404, 'document not found'); }
  return doc;
}

function csvCell(v) {
  if (v === null || v === undefined) { return ''; }
  let s;
  if (typeof v === 'string') { s = v; } else if (typeof v === 'number' || typeof v === 'boolean') { s = String(v); } else { s = JSON.stringify(v); }
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function dump(doc, tableId, query) {
  const table = doc.table(tableId);
  const hidden = ['1', 'true', 'yes'].includes(String(query.get('hidden') || '').toLowerCase());
  const cols = table.userColumns(hidden);
  const rows = table.sortedRowIds().map((id) => {
    const row = table.rows.get(id);
    const out = { id };
    for (const c of cols) { out[c.colId] = types.encodeCell(row[c.colId]); }
    return out;
  });
  return { tableId: table.tableId, columns: ['id', ...cols.map((c) => c.colId)], rows };
}

const BODY_KINDS = ['json', 'html', 'html-echo'];

// A fault from POST /admin/faults (README "Faults").
function parseFault(f) {
  if (f === null || typeof f !== 'object') { throw new ApiError(400, 'a fault is an object'); }
  const apply = Boolean(f.apply);
  const status = f.status === undefined && apply ? 200 : Number(f.status);
  if (!Number.isInteger(status) || status < 100 || status > 599) { throw new ApiError(400, 'fault needs an HTTP status'); }
  const count = f.count === undefined ? 1 : Number(f.count);
  if (!(Number.isInteger(count) && (count >= 1 || count === -1))) { throw new ApiError(400, 'fault count must be >= 1, or -1 for every request'); }
  const body = f.body || 'json';
  if (!BODY_KINDS.includes(body)) { throw new ApiError(400, `fault body must be one of ${BODY_KINDS.join(', ')}`); }
  if (f.pattern) {
    try { new RegExp(f.pattern); } catch (e) { throw new ApiError(400, `bad fault pattern: ${e.message}`); }
  }
  return {
    doc: f.doc || null, status, count, path: f.path || null, pattern: f.pattern || null,
    method: f.method ? String(f.method).toUpperCase() : null, error: f.error || null,
    delayMs: Number(f.delayMs) || 0, apply, body,
    retryAfter: f.retryAfter === undefined ? null : f.retryAfter,
  };
}

const MODES = ['normal', 'revoked', 'deleted', 'alternate', 'slow'];

// A document's mode from POST /admin/docs/{doc}/mode (README "Document modes").
function parseMode(b) {
  const mode = b.mode || 'normal';
  if (!MODES.includes(mode)) { throw new ApiError(400, `mode must be one of ${MODES.join(', ')}`); }
  const out = { mode };
  if (mode === 'alternate') {
    out.status = b.status === undefined ? 502 : Number(b.status);
    if (!Number.isInteger(out.status) || out.status < 100 || out.status > 599) { throw new ApiError(400, 'bad status'); }
    out.body = b.body || 'html';
    if (!BODY_KINDS.includes(out.body)) { throw new ApiError(400, `body must be one of ${BODY_KINDS.join(', ')}`); }
  }
  if (mode === 'slow') {
    out.slowMs = Number(b.slowMs);
    if (!Number.isFinite(out.slowMs) || out.slowMs < 0) { throw new ApiError(400, 'slow mode needs slowMs >= 0'); }
  }
  out.since = new Date().toISOString();
  return out;
}

async function handleAdmin(state, req, res, url) {
  const p = url.pathname.replace(/\/+$/, '').split('/').slice(2).map(decodeURIComponent);   // after /admin
  const m = req.method;
  try {
    // GET /admin/stats, POST /admin/stats/reset
    if (p[0] === 'stats' && p.length === 1 && m === 'GET') { return sendJson(res, 200, state.snapshot()); }
    if (p[0] === 'stats' && p[1] === 'reset' && p.length === 2 && m === 'POST') {
      state.resetStats();
      return sendJson(res, 200, { ok: true });
    }
    // GET/POST /admin/config
    if (p[0] === 'config' && p.length === 1) {
      if (m === 'GET') { return sendJson(res, 200, state.settings); }
      if (m === 'POST') {
        const body = await jsonBody(req);
        let unknown;
        try { unknown = state.applySettings(body); } catch (e) { throw new ApiError(400, e.message); }
        if (unknown.length) { throw new ApiError(400, `unknown settings: ${unknown.join(', ')}`); }
        return sendJson(res, 200, state.settings);
      }
    }
    // GET/POST/DELETE /admin/faults
    if (p[0] === 'faults' && p.length === 1) {
      if (m === 'GET') { return sendJson(res, 200, { faults: state.faults }); }
      if (m === 'DELETE') { state.faults = []; return sendJson(res, 200, { ok: true }); }
      if (m === 'POST') {
        const b = await jsonBody(req);
        const list = Array.isArray(b) ? b : [b];
        for (const f of list) { state.faults.push(parseFault(f)); }
        return sendJson(res, 200, { faults: state.faults });
      }
    }
    // POST /admin/access-token {doc, key, readOnly?, ttlMs?}: what the plugin API's
    // getAccessToken answers for the user holding API key `key` (tokens.js).
    if (p[0] === 'access-token' && p.length === 1 && m === 'POST') {
      const b = await jsonBody(req);
      const doc = getDoc(state, b.doc);
      const access = typeof b.key === 'string' ? state.access(b.key, doc.id) : null;
      if (!access) { throw new ApiError(403, 'No view access'); }
      const ttlMs = b.ttlMs === undefined ? 15 * 60 * 1000 : Number(b.ttlMs);
      if (!Number.isInteger(ttlMs) || ttlMs > 86400000 || ttlMs < -86400000) { throw new ApiError(400, 'ttlMs must be an integer of at most a day'); }
      // As ActiveDoc.getAccessToken: a viewer's token is read-only whatever was asked.
      const readOnly = Boolean(b.readOnly) || access === 'viewers';
      const token = state.tokens.sign(doc.id, b.key, readOnly, ttlMs);
      return sendJson(res, 200, { token, baseUrl: `http://${req.headers.host}/api/docs/${doc.id}`, ttlMsecs: ttlMs });
    }
    // POST /admin/keys {key, docs: ["docA" | {id, access}], access?}
    if (p[0] === 'keys' && p.length === 1 && m === 'POST') {
      const b = await jsonBody(req);
      try {
        state.addKey(b.key);
        for (const e of b.docs || []) {
          if (typeof e === 'string') { state.grant(b.key, e, b.access || 'owners'); } else { state.grant(b.key, e.id, e.access || b.access || 'owners'); }
        }
      } catch (e) { throw new ApiError(400, e.message); }
      return sendJson(res, 200, { ok: true });
    }
    if (p[0] === 'docs') {
      // GET /admin/docs, POST /admin/docs {id, keys, name}
      if (p.length === 1 && m === 'GET') { return sendJson(res, 200, { docs: [...state.docs.keys()] }); }
      if (p.length === 1 && m === 'POST') {
        const b = await jsonBody(req);
        let doc;
        try { doc = state.addDoc(b.id, { keys: b.keys || [], name: b.name }); } catch (e) { throw new ApiError(400, e.message); }
        return sendJson(res, 200, { id: doc.id });
      }
      const doc = getDoc(state, p[1]);
      // DELETE /admin/docs/{doc}: forget the document; POST /admin/docs/{doc}/clear: drop its data
      if (p.length === 2 && m === 'DELETE') { state.docs.delete(doc.id); return sendJson(res, 200, { ok: true }); }
      if (p.length === 3 && p[2] === 'clear' && m === 'POST') {
        doc.tables.clear(); doc.attachments.clear(); doc.nextAttachmentId = 1;
        return sendJson(res, 200, { ok: true });
      }
      // GET/POST /admin/docs/{doc}/mode {mode, status?, body?, slowMs?}
      if (p.length === 3 && p[2] === 'mode') {
        if (m === 'GET') { return sendJson(res, 200, doc.mode); }
        if (m === 'POST') {
          doc.mode = parseMode(await jsonBody(req));
          doc.modeRequests = 0;
          return sendJson(res, 200, doc.mode);
        }
      }
      // POST /admin/docs/{doc}/occupy {slots, ms}: hold in-flight slots like other API users
      if (p.length === 3 && p[2] === 'occupy' && m === 'POST') {
        const b = await jsonBody(req);
        const slots = Math.max(0, Math.floor(Number(b.slots) || 0));
        const ms = Math.max(0, Number(b.ms) || 0);
        doc.inFlight += slots; doc.occupied += slots;
        if (doc.inFlight > doc.maxInFlight) { doc.maxInFlight = doc.inFlight; }
        setTimeout(() => { doc.inFlight -= slots; doc.occupied -= slots; }, ms);
        return sendJson(res, 200, { ok: true, inFlight: doc.inFlight });
      }
      // GET /admin/docs/{doc}/tables
      if (p.length === 3 && p[2] === 'tables' && m === 'GET') {
        const tables = {};
        for (const [id, t] of doc.tables) { tables[id] = { rows: t.rows.size, columns: t.userColumns(false).map((c) => c.colId) }; }
        return sendJson(res, 200, { tables });
      }
      // GET /admin/docs/{doc}/attachments
      if (p.length === 3 && p[2] === 'attachments' && m === 'GET') {
        const out = [...doc.attachments.entries()].map(([id, a]) => ({
          id, fileName: a.fileName, fileSize: a.fileSize, fileIdent: a.fileIdent, fileType: a.fileType,
        }));
        return sendJson(res, 200, { attachments: out });
      }
      if (p.length === 5 && p[2] === 'tables' && m === 'GET') {
        // GET /admin/docs/{doc}/tables/{table}/columns
        if (p[4] === 'columns') {
          const t = doc.table(p[3]);
          return sendJson(res, 200, {
            columns: t.columns.map((c) => ({ id: c.colId, fields: { ...c } })),
          });
        }
        // GET /admin/docs/{doc}/tables/{table}/dump?format=json|csv[&hidden=1]
        if (p[4] === 'dump') {
          const d = dump(doc, p[3], url.searchParams);
          const format = url.searchParams.get('format') || 'json';
          if (format === 'csv') {
            const lines = [d.columns.map(csvCell).join(',')];
            for (const r of d.rows) { lines.push(d.columns.map((c) => csvCell(r[c])).join(',')); }
            const body = Buffer.from(lines.join('\r\n') + '\r\n');
            res.writeHead(200, { 'Content-Type': 'text/csv; charset=utf-8', 'Content-Length': body.length });
            return res.end(body);
          }
          if (format !== 'json') { throw new ApiError(400, 'format must be json or csv'); }
          return sendJson(res, 200, d);
        }
      }
    }
    throw new ApiError(404, `no admin route ${m} ${url.pathname}`);
  } catch (err) {
    return sendError(res, err);
  }
}

module.exports = { handleAdmin };
