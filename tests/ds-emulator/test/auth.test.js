'use strict';
// Authentication and authorisation, as the real API answers them.
const test = require('node:test');
const assert = require('node:assert');
const { startServer } = require('./helpers');

const Q = 'query getDemarche($n: Int!) { demarche(number: $n) { id number title } }';
let s;
test.before(async () => {
  s = await startServer({
    config: {
      procedures: [{ number: 1001, dossiers: 5 }, { number: 1002, dossiers: 5 }],
      tokens: [
        { name: 'tok-a', secret: 'secret-a', procedures: [1001] },
        { name: 'all', secret: 'test-secret', procedures: '*' },
        { name: 'old', secret: 'secret-old', procedures: '*', expired: true },
        { name: 'far', secret: 'secret-far', procedures: '*', networkDenied: true },
      ],
    },
  });
});
test.after(() => s.stop());

test('missing or unknown token: 401 JSON error with code unauthorized', async () => {
  for (const token of [null, 'nope']) {
    const r = await s.gql(Q, { n: 1001 }, { token });
    assert.strictEqual(r.status, 401);
    assert.strictEqual(r.json.errors[0].extensions.code, 'unauthorized');
    assert.match(r.json.errors[0].message, /Without a token/);
  }
});

test('expired token: 401 "Token expired"; network not allowed: 403', async () => {
  const e = await s.gql(Q, { n: 1001 }, { token: 'secret-old' });
  assert.strictEqual(e.status, 401);
  assert.strictEqual(e.json.errors[0].message, 'Token expired');
  const f = await s.gql(Q, { n: 1001 }, { token: 'secret-far' });
  assert.strictEqual(f.status, 403);
});

test('valid token on a procedure outside its list: 200, data null, "hidden due to permissions"', async () => {
  const ok = await s.gql(Q, { n: 1001 }, { token: 'secret-a' });
  assert.strictEqual(ok.status, 200);
  assert.strictEqual(ok.json.data.demarche.number, 1001);
  const r = await s.gql(Q, { n: 1002 }, { token: 'secret-a' });
  assert.strictEqual(r.status, 200);
  assert.strictEqual(r.json.data, null); // demarche is non-null in the schema: the null propagates
  const err = r.json.errors[0];
  assert.strictEqual(err.message, 'An object of type Demarche was hidden due to permissions');
  assert.deepStrictEqual(err.path, ['demarche']);
  assert.strictEqual(err.extensions.code, 'unauthorized');
  assert.ok(err.locations && err.locations.length);
  // the same for a dossier of that procedure
  const list = await s.admin('GET', '/procedures/1002/dossiers');
  const d = await s.gql('query($n:Int!){dossier(number:$n){id}}', { n: list.json.dossiers[0].number }, { token: 'secret-a' });
  assert.strictEqual(d.json.errors[0].message, 'An object of type Dossier was hidden due to permissions');
});

test('unknown procedure: Demarche not found (not_found)', async () => {
  const r = await s.gql(Q, { n: 999999 });
  assert.strictEqual(r.json.data, null);
  assert.strictEqual(r.json.errors[0].message, 'Demarche not found');
  assert.strictEqual(r.json.errors[0].extensions.code, 'not_found');
});

test('tokens can be added at runtime and toggled to expired', async () => {
  const add = await s.admin('POST', '/tokens', { name: 'new', secret: 'secret-new', procedures: [1002] });
  assert.strictEqual(add.status, 201);
  assert.strictEqual((await s.gql(Q, { n: 1002 }, { token: 'secret-new' })).json.data.demarche.number, 1002);
  await s.admin('POST', '/tokens', { name: 'new', secret: 'secret-new', procedures: [1002], expired: true });
  assert.strictEqual((await s.gql(Q, { n: 1002 }, { token: 'secret-new' })).status, 401);
});
