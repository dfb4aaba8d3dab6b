'use strict';
// Starts a real emulator process on port 0 and offers small HTTP helpers.
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const SERVER = path.join(__dirname, '..', 'server.js');

async function startServer({ args = [], config } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ds-emulator-'));
  const portFile = path.join(dir, 'port');
  const fullArgs = [SERVER, '--port', '0', '--port-file', portFile, ...args];
  if (config) {
    const cfgPath = path.join(dir, 'config.json');
    fs.writeFileSync(cfgPath, JSON.stringify(config));
    fullArgs.push('--config', cfgPath);
  }
  const child = spawn(process.execPath, fullArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = ''; let stderr = '';
  child.stdout.on('data', (c) => { stdout += c; });
  child.stderr.on('data', (c) => { stderr += c; });
  const deadline = Date.now() + 15000;
  while (!fs.existsSync(portFile)) {
    if (child.exitCode != null) throw new Error(`server exited: ${stderr}`);
    if (Date.now() > deadline) { child.kill(); throw new Error(`server did not start: ${stderr}`); }
    await new Promise((r) => setTimeout(r, 25));
  }
  const port = Number(fs.readFileSync(portFile, 'utf8').trim());
  const base = `http://127.0.0.1:${port}`;

  async function request(method, url, body, headers = {}) {
    const res = await fetch(base + url, {
      method, headers: { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* plain text */ }
    return { status: res.status, headers: res.headers, text, json };
  }
  const gql = (query, variables = {}, { token = 'test-secret', operationName, headers = {} } = {}) => request('POST', '/api/v2/graphql',
    { query, variables, operationName }, token ? { authorization: `Bearer ${token}`, ...headers } : headers);
  const admin = (method, url, body) => request(method, `/admin${url}`, body);
  const stop = () => new Promise((resolve) => {
    if (child.exitCode != null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
  return { port, base, child, request, gql, admin, stop, output: () => stdout, portFile };
}

const FULL_QUERY = fs.readFileSync(path.join(__dirname, '..', 'full-dossier.graphql'), 'utf8');

module.exports = { startServer, FULL_QUERY };
