'use strict';
// Rate limit, validation, depth, complexity, timeouts and injected faults.
const test = require('node:test');
const assert = require('node:assert');
const { startServer, FULL_QUERY } = require('./helpers');

let s;
test.before(async () => {
  s = await startServer({ config: { procedures: [{ number: 1001, dossiers: 150 }], tokens: [{ name: 't', secret: 'test-secret', procedures: '*' }, { name: 'rl', secret: 'rl-secret', procedures: '*' }] } });
});
test.after(() => s.stop());

const SMALL = 'query small($n: Int!) { demarche(number: $n) { id } }';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('rate limit: the 6th request in a 60 s window gets 429, Retry-After, plain text', async () => {
  await s.admin('POST', '/config', { rateLimitPerMinute: 5 });
  try {
    // stay inside one epoch-aligned window
    const left = 60000 - (Date.now() % 60000);
    if (left < 4000) await sleep(left + 50);
    for (let i = 0; i < 5; i++) {
      const r = await s.gql(SMALL, { n: 1001 }, { token: 'rl-secret' });
      assert.strictEqual(r.status, 200, `request ${i + 1}`);
    }
    const r = await s.gql(SMALL, { n: 1001 }, { token: 'rl-secret' });
    assert.strictEqual(r.status, 429);
    assert.match(r.headers.get('content-type'), /^text\/plain/);
    assert.strictEqual(r.text, 'Retry later\n');
    const retry = Number(r.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
    assert.strictEqual(r.headers.get('ratelimit-remaining'), '0');
    assert.ok(Number(r.headers.get('ratelimit-reset')) > Date.now() / 1000);
    // another token has its own budget
    assert.strictEqual((await s.gql(SMALL, { n: 1001 })).status, 200);
    const c = await s.admin('GET', '/counters');
    assert.ok(c.json.byStatus['429'] >= 1);
    assert.ok(c.json.maxPerTokenPerMinute.rl >= 6);
  } finally {
    await s.admin('POST', '/config', { rateLimitPerMinute: 400 });
  }
});

test('validation errors: HTTP 200 with errors and no data', async () => {
  const r = await s.gql('{ demarche(number: 1001) { id nope } }');
  assert.strictEqual(r.status, 200);
  assert.ok(!('data' in r.json));
  assert.match(r.json.errors[0].message, /Cannot query field "nope" on type "Demarche"/);
  assert.ok(r.json.errors[0].locations);
  const bad = await s.gql('{ demarche(number: "x") { id } }');
  assert.match(bad.json.errors[0].message, /Int/);
  const dt = await s.gql('query($d: ISO8601DateTime){ demarche(number: 1001) { dossiers(updatedSince: $d) { nodes { id } } } }', { d: 'hier' });
  assert.ok(dt.json.errors && !dt.json.data);
  const syntax = await s.gql('{ demarche(number: 1001) { id ');
  assert.strictEqual(syntax.status, 200);
  assert.strictEqual(syntax.json.errors[0].extensions.code, 'graphql_parse_failed');
});

test('depth above 15 is refused', async () => {
  // DossierLinkChamp.dossier lets a query nest dossiers indefinitely
  let inner = 'id';
  for (let i = 0; i < 6; i++) inner = `champs { ... on DossierLinkChamp { dossier { ${inner} } } }`;
  const deep = `{ demarche(number: 1001) { dossiers { nodes { ${inner} } } } }`;
  let ok = 'id';
  for (let i = 0; i < 3; i++) ok = `champs { ... on DossierLinkChamp { dossier { ${ok} } } }`;
  const shallow = await s.gql(`{ demarche(number: 1001) { dossiers(first: 1) { nodes { ${ok} } } } }`);
  assert.ok(!shallow.json.errors, JSON.stringify(shallow.json.errors));
  const r = await s.gql(deep);
  assert.match(r.json.errors[0].message, /^Query has depth of \d+, which exceeds max depth of 15$/);
});

test('complexity: a full page of 100 is about 37,600 and passes; over maxComplexity is refused', async () => {
  const ok = await s.gql(FULL_QUERY, { demarcheNumber: 1001, first: 100 }, { operationName: 'getDemarcheDossiers' });
  assert.ok(!ok.json.errors, JSON.stringify(ok.json.errors));
  await s.admin('POST', '/config', { maxComplexity: 20000 });
  try {
    const r = await s.gql(FULL_QUERY, { demarcheNumber: 1001, first: 100 }, { operationName: 'getDemarcheDossiers' });
    assert.strictEqual(r.status, 200);
    const m = /^Query has complexity of (\d+), which exceeds max complexity of 20000$/.exec(r.json.errors[0].message);
    assert.ok(m, r.json.errors[0].message);
    const n = Number(m[1]);
    assert.ok(n > 30000 && n < 45000, `full page complexity ${n}`);
    // a smaller page fits
    const small = await s.gql(FULL_QUERY, { demarcheNumber: 1001, first: 40 }, { operationName: 'getDemarcheDossiers' });
    assert.ok(!small.json.errors, JSON.stringify(small.json.errors));
  } finally {
    await s.admin('POST', '/config', { maxComplexity: 60000 });
  }
});

test('server timeout: large page with perDossierMs answers a timeout error after serverTimeoutMs', async () => {
  await s.admin('POST', '/config', { serverTimeoutMs: 400, latency: { baseMs: 0, perDossierMs: 10 } });
  try {
    const t0 = Date.now();
    const r = await s.gql('query big { demarche(number: 1001) { dossiers(first: 100) { nodes { id } } } }');
    const dt = Date.now() - t0;
    assert.ok(dt >= 380, `answered after ${dt} ms`);
    assert.strictEqual(r.status, 200);
    assert.strictEqual(r.json.data, null);
    assert.strictEqual(r.json.errors[0].extensions.code, 'timeout');
    assert.strictEqual(r.json.errors[0].message, 'Timeout on Demarche.dossiers');
    // a smaller page fits in the budget (20 x 10 ms < 400 ms)
    const ok = await s.gql('query small { demarche(number: 1001) { dossiers(first: 20) { nodes { id } } } }');
    assert.strictEqual(ok.json.data.demarche.dossiers.nodes.length, 20);
    await s.admin('POST', '/config', { timeoutResponse: 'http504' });
    const p = await s.gql('query big { demarche(number: 1001) { dossiers(first: 100) { nodes { id } } } }');
    assert.strictEqual(p.status, 504);
  } finally {
    await s.admin('POST', '/config', { serverTimeoutMs: 30000, timeoutResponse: 'graphql', latency: { baseMs: 0, perDossierMs: 0 } });
  }
});

test('faults: http500 once, then normal; partialData; graphqlError; latency; cleared', async () => {
  const Q = 'query getPage($n: Int!) { demarche(number: $n) { dossiers(first: 3) { nodes { number } } } }';
  await s.admin('POST', '/faults', { match: { procedure: 1001 }, kind: 'http500', count: 1 });
  assert.strictEqual((await s.gql(Q, { n: 1001 })).status, 500);
  assert.strictEqual((await s.gql(Q, { n: 1001 })).status, 200);

  await s.admin('POST', '/faults', { match: { operationName: 'getPage' }, kind: 'partialData', count: 1 });
  const p = await s.gql(Q, { n: 1001 }, { operationName: 'getPage' });
  assert.strictEqual(p.status, 200);
  const nodes = p.json.data.demarche.dossiers.nodes;
  assert.strictEqual(nodes.length, 3);
  assert.strictEqual(nodes[2], null);
  assert.strictEqual(p.json.errors.length, 1);

  await s.admin('POST', '/faults', { match: { token: 't' }, kind: 'graphqlError', count: 1, message: 'boom' });
  const g = await s.gql(Q, { n: 1001 });
  assert.deepStrictEqual([g.status, g.json.data, g.json.errors[0].message], [200, null, 'boom']);

  await s.admin('POST', '/faults', { kind: 'latency', latencyMs: 300, count: 1 });
  const t0 = Date.now();
  assert.strictEqual((await s.gql(Q, { n: 1001 })).status, 200);
  assert.ok(Date.now() - t0 >= 280);

  await s.admin('POST', '/faults', { kind: 'http500', count: -1 });
  assert.strictEqual((await s.gql(Q, { n: 1001 })).status, 500);
  assert.strictEqual((await s.gql(Q, { n: 1001 })).status, 500);
  await s.admin('DELETE', '/faults');
  assert.strictEqual((await s.gql(Q, { n: 1001 })).status, 200);
});

test('fault hang: held until serverTimeoutMs then 504 (or until the client gives up)', async () => {
  await s.admin('POST', '/config', { serverTimeoutMs: 300 });
  await s.admin('POST', '/faults', { kind: 'hang', count: 1 });
  try {
    const r = await s.gql(SMALL, { n: 1001 });
    assert.strictEqual(r.status, 504);
    const ac = new AbortController();
    await s.admin('POST', '/config', { serverTimeoutMs: 30000 });
    await s.admin('POST', '/faults', { kind: 'hang', count: 1 });
    const pending = fetch(`${s.base}/api/v2/graphql`, { method: 'POST', signal: ac.signal, headers: { authorization: 'Bearer test-secret', 'content-type': 'application/json' }, body: JSON.stringify({ query: SMALL, variables: { n: 1001 } }) });
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(pending);
  } finally {
    await s.admin('POST', '/config', { serverTimeoutMs: 30000 });
    await s.admin('DELETE', '/faults');
  }
});

test('counters: totals by token, operation, status and procedure; reset', async () => {
  await s.admin('POST', '/counters/reset');
  await s.gql(SMALL, { n: 1001 }, { operationName: 'small' });
  await s.gql('query page { demarche(number: 1001) { dossiers(first: 7) { nodes { id } } } }', {}, { operationName: 'page' });
  await s.gql(SMALL, { n: 1001 }, { token: 'wrong', operationName: 'small' });
  const c = (await s.admin('GET', '/counters')).json;
  assert.strictEqual(c.total, 3);
  assert.strictEqual(c.byToken.t, 2);
  assert.strictEqual(c.byOperation.small, 2);
  assert.strictEqual(c.byToken.unknown, 1);
  assert.strictEqual(c.byOperation.page, 1);
  assert.strictEqual(c.byStatus['200'], 2);
  assert.strictEqual(c.byStatus['401'], 1);
  assert.strictEqual(c.byProcedure['1001'], 3);
  assert.strictEqual(c.dossiersServed, 7);
  assert.strictEqual(c.maxPerTokenPerMinute.t, 2);
});
