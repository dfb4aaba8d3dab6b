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

function sendError(res, err) {
  const status = err.status || 500;
  const body = { error: err.message || 'internal error' };
  if (err.details !== undefined) { body.details = err.details; }
  sendJson(res, status, body);
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
    stream.on('end', () => { if (!failed) { resolve(Buffer.concat(chunks)); } });
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

module.exports = { sendJson, sendError, readBody, readJsonRequest, parseJsonBody, isMultipart, drain, hasBody };
