'use strict';
// Small HTTP helpers: JSON replies, body reading with express.json()'s rules.

const zlib = require('zlib');
const { ApiError } = require('./errors');

function sendJson(res, status, obj, headers = {}) {
  if (res.headersSent || res.writableEnded) { return; }
  const body = Buffer.from(JSON.stringify(obj === undefined ? null : obj));
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': body.length,
    ...headers,
  });
  res.end(body);
}

function escapeHtml(t) {
  return String(t).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

const REASONS = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 413: 'Request Entity Too Large',
  414: 'Request-URI Too Large', 429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout' };

// A text/html answer as a proxy in front of Grist gives (nginx's page); with echoHeaders the
// request's headers are copied into it, Authorization included, as a misconfigured proxy's
// debug page does.
function sendHtml(res, status, req, echoHeaders = false) {
  if (res.headersSent || res.writableEnded) { return; }
  const title = `${status} ${REASONS[status] || 'Error'}`;
  let html = `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n`;
  if (echoHeaders) {
    html += '<pre>\r\n' + escapeHtml(`${req.method} ${req.url} HTTP/${req.httpVersion}`) + '\r\n';
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      html += escapeHtml(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`) + '\r\n';
    }
    html += '</pre>\r\n';
  }
  html += '<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
  const body = Buffer.from(html);
  res.writeHead(status, { 'Content-Type': 'text/html', 'Content-Length': body.length });
  res.end(body);
}

function sendError(res, err, headers = {}) {
  const status = err.status || 500;
  const body = { error: err.message || 'internal error' };
  if (err.details !== undefined) { body.details = err.details; }
  sendJson(res, status, body, headers || {});
}

function isJsonType(req) {
  const ct = String(req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  return ct === 'application/json';
}

function isMultipart(req) {
  return String(req.headers['content-type'] || '').toLowerCase().startsWith('multipart/form-data');
}

function hasBody(req) {
  return req.headers['transfer-encoding'] !== undefined ||
    (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
}

// Reads and discards a request body.
function drain(req) {
  return new Promise((resolve) => {
    if (req.readableEnded) { resolve(); return; }
    req.on('end', resolve);
    req.on('error', resolve);
    req.on('close', resolve);
    req.resume();
  });
}

// Reads the whole body, failing with 413 {"error":"request entity too large"} as soon as it is
// known to exceed `limit` (from Content-Length, or while streaming). The rest of an oversize
// body is drained so that the connection can be kept alive. Nothing has been applied then.
function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const declared = req.headers['content-length'];
    const encoding = String(req.headers['content-encoding'] || 'identity').toLowerCase();
    if (declared !== undefined && encoding === 'identity' && Number(declared) > limit) {
      drain(req);
      reject(new ApiError(413, 'request entity too large'));
      return;
    }
    let stream = req;
    if (encoding === 'gzip' || encoding === 'deflate') {
      stream = req.pipe(encoding === 'gzip' ? zlib.createGunzip() : zlib.createInflate());
    } else if (encoding !== 'identity') {
      drain(req);
      reject(new ApiError(415, `unsupported content encoding "${encoding}"`));
      return;
    }
    const chunks = [];
    let size = 0;
    let failed = false;
    stream.on('data', (c) => {
      if (failed) { return; }
      size += c.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        if (stream !== req) { req.unpipe(); }
        drain(req);
        reject(new ApiError(413, 'request entity too large'));
        return;
      }
      chunks.push(c);
    });
    stream.on('end', () => {
      if (failed) { return; }
      req._bodyBytes = size;          // for the parse cost model (api.js parseDelay)
      req._bodyEnd = performance.now();
      resolve(Buffer.concat(chunks));
    });
    stream.on('error', (e) => {
      if (!failed) { failed = true; reject(new ApiError(400, e.message || 'request aborted')); }
    });
  });
}

// express.json() (strict): only objects and arrays; an empty body gives {}.
function parseJsonBody(buf) {
  const text = buf.toString('utf8');
  if (text.length === 0) { return {}; }
  const first = /^[\x20\x09\x0a\x0d]*(.)/.exec(text);
  if (first && first[1] !== '{' && first[1] !== '[') {
    throw new ApiError(400, `Unexpected token ${first[1]} in JSON at position ${text.indexOf(first[1])}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, e.message);
  }
}

// The JSON body of a request as express would give it: parsed when Content-Type is
// application/json; otherwise {} (the body is read and ignored).
async function readJsonRequest(req, limit) {
  if (!hasBody(req)) { return {}; }
  if (!isJsonType(req)) { await drain(req); return {}; }
  return parseJsonBody(await readBody(req, limit));
}

module.exports = { sendJson, sendHtml, sendError, readBody, readJsonRequest, parseJsonBody, isMultipart, drain, hasBody };
