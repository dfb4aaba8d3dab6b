#!/usr/bin/env node
'use strict';
// Grist REST API emulator for ds2grist tests. See README.md.
//
// node server.js [--host 127.0.0.1] [--port 0] [--port-file PATH] [--config PATH]
//                [--doc ID --key KEY]... [--cap 10] [--write-fixed-ms 8]
//                [--write-per-row-ms 0.02] [--write-per-cell-ms 0.0044]
//                [--write-per-updated-row-ms 0.01] [--write-per-updated-cell-ms 0.0022]
//                [--write-per-unchanged-cell-ms 0.0011] [--write-per-column-ms 1]
//                [--parse-ms-per-mb 10] [--read-fixed-ms 2] [--reject-cost-ms 0]
//                [--reject-delay-ms 0] [--body-limit BYTES] [--max-url-bytes 0]
//                [--reads-wait-for-writes] [--grist-congestion] [--static-dir DIR]

const fs = require('fs');
const http = require('http');
const path = require('path');
const { State } = require('./lib/state');
const { handleApi } = require('./lib/api');
const { handleAdmin } = require('./lib/admin');
const { sendJson } = require('./lib/http');

const USAGE = `usage: node server.js [--host 127.0.0.1] [--port 0] [--port-file PATH] [--config PATH]
       [--doc ID --key KEY]... [--cap N] [--write-fixed-ms MS] [--write-per-row-ms MS]
       [--write-per-cell-ms MS] [--write-per-updated-row-ms MS] [--write-per-updated-cell-ms MS]
       [--write-per-unchanged-cell-ms MS] [--write-per-column-ms MS] [--parse-ms-per-mb MS]
       [--read-fixed-ms MS] [--reject-cost-ms MS] [--reject-delay-ms MS]
       [--body-limit BYTES] [--max-url-bytes N] [--reads-wait-for-writes] [--grist-congestion]
       [--static-dir DIR]`;

const NUMERIC_FLAGS = {
  '--cap': 'maxParallelPerDoc',
  '--write-fixed-ms': 'writeFixedMs',
  '--write-per-row-ms': 'writePerRowMs',
  '--write-per-cell-ms': 'writePerCellMs',
  '--write-per-updated-row-ms': 'writePerUpdatedRowMs',
  '--write-per-updated-cell-ms': 'writePerUpdatedCellMs',
  '--write-per-unchanged-cell-ms': 'writePerUnchangedCellMs',
  '--write-per-column-ms': 'writePerColumnMs',
  '--parse-ms-per-mb': 'parseMsPerMB',
  '--max-url-bytes': 'maxUrlBytes',
  '--read-fixed-ms': 'readFixedMs',
  '--reject-cost-ms': 'rejectCostMs',
  '--reject-delay-ms': 'rejectDelayMs',
  '--body-limit': 'bodyLimitBytes',
};

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, portFile: null, config: null, docs: [], settings: {}, staticDir: null };
  let pendingDoc = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) { throw new Error(`${a} needs a value`); }
      return argv[++i];
    };
    if (a === '--help' || a === '-h') { console.log(USAGE); process.exit(0); }
    else if (a === '--host') { opts.host = next(); }
    else if (a === '--port') { opts.port = Number(next()); }
    else if (a === '--port-file') { opts.portFile = next(); }
    else if (a === '--config') { opts.config = next(); }
    else if (a === '--static-dir') { opts.staticDir = next(); }
    else if (a === '--doc') { pendingDoc = { id: next(), keys: [] }; opts.docs.push(pendingDoc); }
    else if (a === '--key') {
      if (!pendingDoc) { throw new Error('--key must follow --doc'); }
      pendingDoc.keys.push(next());
    }
    else if (a === '--reads-wait-for-writes') { opts.settings.readsWaitForWrites = true; }
    else if (a === '--grist-congestion') {
      // Calibrated so that 12 writers retrying 429s at once against a cap of 10 collapse
      // throughput about as the measured grist-core did (see README).
      opts.settings.rejectCostMs = 8;
      opts.settings.rejectDelayMs = 16;
    }
    else if (NUMERIC_FLAGS[a]) {
      const v = Number(next());
      if (!Number.isFinite(v) || v < 0) { throw new Error(`${a} needs a non-negative number`); }
      opts.settings[NUMERIC_FLAGS[a]] = v;
    } else { throw new Error(`unknown argument ${a}`); }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) { throw new Error('bad --port'); }
  return opts;
}

// What Grist's web server serves beside the API, for browser tests (--static-dir): its plugin API
// script at /grist-plugin-api.js, and pages standing in for its document pages at /pages/<file>, both
// read from DIR (tests/browser/harness). Plain file names only; anything else is 404.
const STATIC_TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'application/javascript; charset=utf-8',
                       '.css': 'text/css; charset=utf-8' };

function serveStatic(dir, p, req, res) {
  const name = p === '/grist-plugin-api.js' ? 'grist-plugin-api.js' : p.slice('/pages/'.length);
  const type = STATIC_TYPES[path.extname(name)];
  req.resume();
  if (req.method !== 'GET' || !/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(name) || !type) {
    sendJson(res, 404, { error: `not found: ${p}` });
    return;
  }
  fs.readFile(path.join(dir, name), (err, data) => {
    if (err) { sendJson(res, 404, { error: `not found: ${p}` }); return; }
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': data.length, 'Cache-Control': 'no-cache' });
    res.end(data);
  });
}

function createServer(state, staticDir = null) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://emulator');
    const p = url.pathname;
    let done;
    if (staticDir && (p === '/grist-plugin-api.js' || p.startsWith('/pages/'))) { serveStatic(staticDir, p, req, res); return; }
    if (p.startsWith('/api/docs/')) { done = handleApi(state, req, res, url); }
    else if (p === '/admin' || p.startsWith('/admin/')) { done = handleAdmin(state, req, res, url); }
    else if (p === '/status' || p === '/health') { sendJson(res, 200, { ok: true }); return; }
    else { req.resume(); sendJson(res, 404, { error: `not found: ${p}` }); return; }
    Promise.resolve(done).catch((err) => {
      console.error('grist-emulator: unexpected error', err);
      sendJson(res, 500, { error: 'internal error' });
    });
  });
  server.keepAliveTimeout = 65000;
  server.headersTimeout = 66000;
  server.requestTimeout = 0;
  return server;
}

function writePortFile(file, port) {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, `${port}\n`);
  fs.renameSync(tmp, file);
}

function main() {
  let opts;
  try { opts = parseArgs(process.argv.slice(2)); } catch (e) {
    console.error(`grist-emulator: ${e.message}\n${USAGE}`);
    process.exit(2);
  }
  const state = new State();
  let staticDir = opts.staticDir;
  try {
    if (opts.config) {
      const cfg = JSON.parse(fs.readFileSync(path.resolve(opts.config), 'utf8'));
      if (cfg.staticDir !== undefined) {
        if (!staticDir) { staticDir = String(cfg.staticDir); }
        delete cfg.staticDir;
      }
      state.loadConfig(cfg);
    }
    for (const d of opts.docs) { state.addDoc(d.id, { keys: d.keys }); }
    state.applySettings(opts.settings);
  } catch (e) {
    console.error(`grist-emulator: bad configuration: ${e.message}`);
    process.exit(2);
  }
  const server = createServer(state, staticDir ? path.resolve(staticDir) : null);
  server.on('error', (e) => { console.error(`grist-emulator: ${e.message}`); process.exit(1); });
  server.listen(opts.port, opts.host, () => {
    const { port } = server.address();
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    if (opts.portFile) { writePortFile(opts.portFile, port); }
    console.log(`grist-emulator listening on http://${host}:${port}`);
  });
  const stop = () => { server.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) { main(); }

module.exports = { createServer, parseArgs, State };
