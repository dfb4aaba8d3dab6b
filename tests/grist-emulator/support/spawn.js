'use strict';
// Spawns a real emulator on port 0 and talks to it over HTTP.

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const SERVER = path.join(__dirname, '..', 'server.js');

async function startServer(args = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grist-emu-'));
  const portFile = path.join(dir, 'port');
  const child = spawn(process.execPath, [SERVER, '--port', '0', '--port-file', portFile, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const deadline = Date.now() + 10000;
  // The port file is written just before the "listening" line is printed: wait for both.
  while (!fs.existsSync(portFile) || !stdout.includes('\n')) {
    if (child.exitCode !== null) { throw new Error(`server exited: ${stderr}`); }
    if (Date.now() > deadline) { child.kill(); throw new Error(`server did not start: ${stderr}`); }
    await new Promise((r) => setTimeout(r, 20));
  }
  const port = Number(fs.readFileSync(portFile, 'utf8').trim());
  const base = `http://127.0.0.1:${port}`;

  async function request(method, p, { body, key, headers = {}, raw } = {}) {
    const h = { ...headers };
    if (key !== null && key !== undefined) { h.Authorization = `Bearer ${key}`; }
    let payload;
    if (raw !== undefined) { payload = raw; } else if (body !== undefined) {
      payload = JSON.stringify(body);
      if (!h['Content-Type']) { h['Content-Type'] = 'application/json'; }
    }
    const res = await fetch(base + p, { method, headers: h, body: payload });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch (e) { json = undefined; }
    return { status: res.status, json, text, headers: res.headers };
  }

  return {
    base,
    port,
    child,
    output: () => ({ stdout, stderr }),
    request,
    // API call on a document with a key (defaults: docA / keyA).
    api: (method, p, body, opts = {}) => request(method, `/api/docs/${opts.doc || 'docA'}${p}`,
      { body, key: opts.key === undefined ? 'keyA' : opts.key, headers: opts.headers, raw: opts.raw }),
    admin: (method, p, body) => request(method, `/admin${p}`, { body }),
    async stop() {
      if (child.exitCode !== null) { return child.exitCode; }
      const done = new Promise((r) => child.on('exit', (code) => r(code)));
      child.kill('SIGTERM');
      const code = await done;
      fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

module.exports = { startServer };
