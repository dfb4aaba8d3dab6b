'use strict';
// Small helpers: deterministic PRNG, hashing, typed ids, Europe/Paris timestamps.

/** 32-bit FNV-1a hash of any number of values (strings or numbers). */
function hash(...parts) {
  let h = 0x811c9dc5;
  for (const p of parts) {
    const s = String(p);
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0x2c; // separator
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: small fast deterministic PRNG returning floats in [0, 1). */
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)); // inclusive
  next.pick = (arr) => arr[Math.floor(next() * arr.length)];
  next.chance = (p) => next() < p;
  return next;
}

/** graphql-ruby style typed id: base64("Type-id"), e.g. "Q2hhbXAtMTAx" for Champ-101. */
const typedId = (type, id) => Buffer.from(`${type}-${id}`).toString('base64');

// --- Europe/Paris time -------------------------------------------------------
// EU rule: summer time from the last Sunday of March 01:00 UTC to the last
// Sunday of October 01:00 UTC (+02:00), otherwise +01:00.
const dstCache = new Map();
function lastSundayUtc(year, month) { // month 0-based, returns ms at 01:00 UTC
  const d = new Date(Date.UTC(year, month + 1, 0, 1, 0, 0));
  d.setUTCDate(d.getUTCDate() - d.getUTCDay());
  return d.getTime();
}
function parisOffsetMinutes(ms) {
  const year = new Date(ms).getUTCFullYear();
  let r = dstCache.get(year);
  if (!r) { r = [lastSundayUtc(year, 2), lastSundayUtc(year, 9)]; dstCache.set(year, r); }
  return ms >= r[0] && ms < r[1] ? 120 : 60;
}
const p2 = (n) => (n < 10 ? '0' : '') + n;
/** ISO 8601 with seconds precision and the Paris offset: 2026-03-14T15:06:26+01:00 */
function isoParis(ms) {
  if (ms == null) return null;
  const off = parisOffsetMinutes(ms);
  const d = new Date(ms + off * 60000);
  return `${d.getUTCFullYear()}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())}T${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}+${p2(off / 60)}:00`;
}
/** ISO 8601 date (YYYY-MM-DD) in Paris time. */
function dateParis(ms) {
  if (ms == null) return null;
  const d = new Date(ms + parisOffsetMinutes(ms) * 60000);
  return `${d.getUTCFullYear()}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())}`;
}
const MOIS = ['janvier', 'février', 'mars', 'avril', 'mai', 'juin', 'juillet', 'août', 'septembre', 'octobre', 'novembre', 'décembre'];
/** "12 mai 2024" as DS renders dates in stringValue. */
function dateFr(ms) {
  const d = new Date(ms + parisOffsetMinutes(ms) * 60000);
  return `${d.getUTCDate()} ${MOIS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}
function dateTimeFr(ms) {
  const d = new Date(ms + parisOffsetMinutes(ms) * 60000);
  return `${dateFr(ms)} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}`;
}

/** Strict ISO 8601 date-time parser for ISO8601DateTime inputs; returns ms or NaN. */
const ISO_RE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
function parseIso(s) {
  if (typeof s !== 'string' || !ISO_RE.test(s)) return NaN;
  if (/(Z|[+-]\d{2}:?\d{2})$/.test(s)) return Date.parse(s);
  // no zone designator: Paris local time, as on the DS servers
  const asUtc = Date.parse(/T/.test(s) ? `${s}Z` : `${s}T00:00:00Z`);
  const guess = asUtc - parisOffsetMinutes(asUtc) * 60000;
  return asUtc - parisOffsetMinutes(guess) * 60000;
}

module.exports = { hash, rng, typedId, isoParis, dateParis, dateFr, dateTimeFr, parseIso, parisOffsetMinutes };
