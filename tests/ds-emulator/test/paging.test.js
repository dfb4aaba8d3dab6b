'use strict';
// Listing semantics: page size, ordering, opaque cursors that survive changes,
// updatedSince, deletions and the labels-only rule.
const test = require('node:test');
const assert = require('node:assert');
const { startServer } = require('./helpers');

const LIST = `query list($n: Int!, $first: Int, $after: String, $updatedSince: ISO8601DateTime) {
  demarche(number: $n) {
    dossiers(first: $first, after: $after, updatedSince: $updatedSince) {
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      nodes { number dateDerniereModification state labels { name } }
    }
  }
}`;
const DELETED = `query del($n: Int!, $first: Int, $after: String, $since: ISO8601DateTime) {
  demarche(number: $n) {
    deletedDossiers(first: $first, after: $after, deletedSince: $since) {
      pageInfo { hasNextPage endCursor }
      nodes { id number dateSupression state reason }
    }
  }
}`;

let s;
test.before(async () => {
  s = await startServer({ config: { seed: 7, procedures: [{ number: 1001, dossiers: 250 }, { number: 1002, dossiers: 30, deleted: 5 }], tokens: [{ name: 't', secret: 'test-secret', procedures: '*' }] } });
});
test.after(() => s.stop());

async function listAll(variables) {
  const seen = []; let after = null; const pages = [];
  for (;;) {
    const r = await s.gql(LIST, { ...variables, after });
    assert.strictEqual(r.status, 200);
    assert.ok(!r.json.errors, JSON.stringify(r.json.errors));
    const c = r.json.data.demarche.dossiers;
    pages.push(c);
    seen.push(...c.nodes.map((n) => n.number));
    if (!c.pageInfo.hasNextPage) return { seen, pages, last: c.pageInfo.endCursor };
    after = c.pageInfo.endCursor;
  }
}

test('first=100 over 250 dossiers: 3 pages, each dossier exactly once', async () => {
  const { seen, pages } = await listAll({ n: 1001, first: 100 });
  assert.deepStrictEqual(pages.map((p) => p.nodes.length), [100, 100, 50]);
  assert.deepStrictEqual(pages.map((p) => p.pageInfo.hasNextPage), [true, true, false]);
  assert.deepStrictEqual(pages.map((p) => p.pageInfo.hasPreviousPage), [false, true, true]);
  assert.strictEqual(new Set(seen).size, 250);
  assert.strictEqual(seen.length, 250);
});

test('first defaults to 100; first > 100 is clamped to 100 (DS max_page_size); negative first is an error', async () => {
  const def = await s.gql(LIST, { n: 1001 });
  assert.strictEqual(def.json.data.demarche.dossiers.nodes.length, 100);
  const big = await s.gql(LIST, { n: 1001, first: 500 });
  assert.ok(!big.json.errors);
  assert.strictEqual(big.json.data.demarche.dossiers.nodes.length, 100);
  assert.strictEqual(big.json.data.demarche.dossiers.pageInfo.hasNextPage, true);
  const neg = await s.gql(LIST, { n: 1001, first: -1 });
  assert.strictEqual(neg.json.errors[0].extensions.code, 'bad_request');
  assert.strictEqual(neg.json.data, null);
});

test('updatedSince: ordered by update time, inclusive, ISO dates with the Paris offset', async () => {
  const { pages } = await listAll({ n: 1001, first: 100, updatedSince: '2000-01-01T00:00:00Z' });
  const nodes = pages.flatMap((p) => p.nodes);
  assert.strictEqual(nodes.length, 250);
  for (const n of nodes) assert.match(n.dateDerniereModification, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00$/);
  const ts = nodes.map((n) => Date.parse(n.dateDerniereModification));
  for (let i = 1; i < ts.length; i++) assert.ok(ts[i] >= ts[i - 1], 'not ordered by update time');
  // inclusive: updatedSince equal to a dossier's (second-truncated) date returns it
  const mid = nodes[120];
  const r = await s.gql(LIST, { n: 1001, first: 100, updatedSince: mid.dateDerniereModification });
  const got = r.json.data.demarche.dossiers.nodes;
  assert.ok(got.some((n) => n.number === mid.number));
  assert.ok(got.every((n) => Date.parse(n.dateDerniereModification) >= Date.parse(mid.dateDerniereModification)));
});

test('a stored cursor stays valid: a dossier changed after the cursor was taken is seen again; empty page has endCursor null', async () => {
  const since = '2000-01-01T00:00:00Z';
  const { seen, last } = await listAll({ n: 1001, first: 100, updatedSince: since });
  assert.strictEqual(seen.length, 250);
  // nothing new: the page after the last cursor is empty, endCursor null
  const empty = await s.gql(LIST, { n: 1001, first: 100, updatedSince: since, after: last });
  const c = empty.json.data.demarche.dossiers;
  assert.deepStrictEqual(c.nodes, []);
  assert.strictEqual(c.pageInfo.endCursor, null);
  assert.strictEqual(c.pageInfo.startCursor, null);
  assert.strictEqual(c.pageInfo.hasNextPage, false);
  // modify an old dossier (first one seen) through the admin API
  const target = seen[0];
  const p = await s.admin('PATCH', `/procedures/1001/dossiers/${target}`, { champs: { Q2hhbXAtMTAz: 'Nouveau nom du projet' } });
  assert.strictEqual(p.status, 200);
  const again = await s.gql(LIST, { n: 1001, first: 100, updatedSince: since, after: last });
  const nodes = again.json.data.demarche.dossiers.nodes;
  assert.deepStrictEqual(nodes.map((n) => n.number), [target]);
  assert.strictEqual(nodes[0].dateDerniereModification, p.json.dateDerniereModification);
  assert.ok(again.json.data.demarche.dossiers.pageInfo.endCursor);
  // two quick changes never share an internal timestamp: both show up, in order
  const a = await s.admin('PATCH', `/procedures/1001/dossiers/${seen[1]}`, { archived: true });
  const b = await s.admin('PATCH', `/procedures/1001/dossiers/${seen[2]}`, { state: 'en_instruction' });
  assert.ok(b.json.updatedAtMs > a.json.updatedAtMs);
  const more = await s.gql(LIST, { n: 1001, first: 100, updatedSince: since, after: again.json.data.demarche.dossiers.pageInfo.endCursor });
  assert.deepStrictEqual(more.json.data.demarche.dossiers.nodes.map((n) => n.number), [seen[1], seen[2]]);
});

test('cursor is opaque but garbage is rejected', async () => {
  const r = await s.gql(LIST, { n: 1001, after: 'not-a-cursor' });
  assert.strictEqual(r.json.errors[0].extensions.code, 'bad_request');
});

test('labels-only change does not bump dateDerniereModification (and is not seen by updatedSince)', async () => {
  const before = (await s.admin('GET', '/procedures/1001/dossiers')).json.dossiers.find((d) => d.number === 1000100);
  const r = await s.admin('PATCH', '/procedures/1001/dossiers/1000100', { labels: ['Urgent', 'À relancer'] });
  assert.strictEqual(r.status, 200);
  assert.strictEqual(r.json.dateDerniereModification, before.dateDerniereModification);
  const after = (await s.admin('GET', '/procedures/1001/dossiers')).json.dossiers.find((d) => d.number === 1000100);
  assert.deepStrictEqual(after.labels, ['Urgent', 'À relancer']);
  assert.strictEqual(after.updatedAtMs, before.updatedAtMs);
  const full = await s.admin('GET', '/procedures/1001/dossiers/1000100');
  assert.deepStrictEqual(full.json.labels.map((l) => l.name), ['Urgent', 'À relancer']);
});

test('touch bumps K dossiers', async () => {
  const t0 = new Date().toISOString();
  const r = await s.admin('POST', '/procedures/1001/touch', { count: 7 });
  assert.strictEqual(r.json.numbers.length, 7);
  const l = await s.gql(LIST, { n: 1001, updatedSince: t0.replace(/\.\d+Z$/, 'Z') });
  const got = l.json.data.demarche.dossiers.nodes.map((n) => n.number);
  for (const n of r.json.numbers) assert.ok(got.includes(n));
});

test('deletedDossiers: pre-existing and admin deletions, ordered by deletion time, never in dossiers', async () => {
  const r0 = await s.gql(DELETED, { n: 1002 });
  const c0 = r0.json.data.demarche.deletedDossiers;
  assert.strictEqual(c0.nodes.length, 5);
  for (const n of c0.nodes) {
    assert.match(n.dateSupression, /\+0[12]:00$/);
    assert.ok(['expired', 'instructeur_request', 'manager_request', 'procedure_removed', 'user_expired', 'user_removed', 'user_request'].includes(n.reason));
  }
  const list = (await s.admin('GET', '/procedures/1002/dossiers')).json.dossiers;
  const victim = list[3].number;
  const del = await s.admin('DELETE', `/procedures/1002/dossiers/${victim}?reason=user_request`);
  assert.strictEqual(del.status, 200);
  // continue from the stored cursor: only the new deletion
  const r1 = await s.gql(DELETED, { n: 1002, after: c0.pageInfo.endCursor });
  assert.deepStrictEqual(r1.json.data.demarche.deletedDossiers.nodes.map((n) => [n.number, n.reason]), [[victim, 'user_request']]);
  const since = await s.gql(DELETED, { n: 1002, since: del.json.dateSupression });
  assert.deepStrictEqual(since.json.data.demarche.deletedDossiers.nodes.map((n) => n.number), [victim]);
  const all = await s.gql(LIST, { n: 1002 });
  assert.ok(!all.json.data.demarche.dossiers.nodes.some((n) => n.number === victim));
  const paged = await s.gql(DELETED, { n: 1002, first: 2 });
  assert.strictEqual(paged.json.data.demarche.deletedDossiers.nodes.length, 2);
  assert.strictEqual(paged.json.data.demarche.deletedDossiers.pageInfo.hasNextPage, true);
});

test('default order (no updatedSince) is by deposit date, new dossiers come last; filters by state', async () => {
  const c = await s.admin('POST', '/procedures/1002/dossiers', { state: 'en_instruction' });
  assert.strictEqual(c.status, 201);
  const r = await s.gql(LIST, { n: 1002 });
  const nodes = r.json.data.demarche.dossiers.nodes;
  assert.strictEqual(nodes[nodes.length - 1].number, c.json.number);
  const st = await s.gql('query($n:Int!){demarche(number:$n){dossiers(state: en_instruction){nodes{number state}}}}', { n: 1002 });
  const sn = st.json.data.demarche.dossiers.nodes;
  assert.ok(sn.length >= 1 && sn.every((n) => n.state === 'en_instruction'));
});

test('pending deletions (the bin) are listed by pendingDeletedDossiers, not by dossiers', async () => {
  const list = (await s.admin('GET', '/procedures/1002/dossiers')).json.dossiers;
  const victim = list[0].number;
  const del = await s.admin('DELETE', `/procedures/1002/dossiers/${victim}?reason=user_request&pending=true`);
  assert.strictEqual(del.status, 200);
  const r = await s.gql('query($n:Int!){demarche(number:$n){pendingDeletedDossiers{nodes{number reason dateSupression}} dossiers{nodes{number}}}}', { n: 1002 });
  const dem = r.json.data.demarche;
  assert.deepStrictEqual(dem.pendingDeletedDossiers.nodes.map((x) => x.number), [victim]);
  assert.ok(!dem.dossiers.nodes.some((x) => x.number === victim));
});

test('group-scoped listing: groupeInstructeur(number) { dossiers } lists only that group', async () => {
  const g = await s.gql('{ demarche(number: 1001) { groupeInstructeurs { number label } } }');
  const groups = g.json.data.demarche.groupeInstructeurs;
  assert.ok(groups.length >= 2);
  let total = 0;
  for (const grp of groups) {
    const r = await s.gql('query($g:Int!){groupeInstructeur(number:$g){label dossiers(first:100){pageInfo{hasNextPage} nodes{number groupeInstructeur{number}}}}}', { g: grp.number });
    assert.ok(!r.json.errors, JSON.stringify(r.json.errors));
    const nodes = r.json.data.groupeInstructeur.dossiers.nodes;
    assert.ok(nodes.every((n) => n.groupeInstructeur.number === grp.number));
    total += nodes.length;
  }
  assert.ok(total > 0);
});

test('last / before and the deprecated order: DESC follow the DS CursorConnection rules', async () => {
  const Q = `query($n:Int!,$first:Int,$last:Int,$before:String,$order:Order){demarche(number:$n){dossiers(first:$first,last:$last,before:$before,order:$order){
    pageInfo{hasNextPage hasPreviousPage startCursor endCursor} nodes{number}}}}`;
  const all = (await listAll({ n: 1002, first: 100 })).seen;
  const last = (await s.gql(Q, { n: 1002, last: 3 })).json.data.demarche.dossiers;
  assert.deepStrictEqual(last.nodes.map((x) => x.number), all.slice(-3));
  assert.deepStrictEqual([last.pageInfo.hasPreviousPage, last.pageInfo.hasNextPage], [true, false]);
  const before = (await s.gql(Q, { n: 1002, first: 2, before: last.pageInfo.startCursor })).json.data.demarche.dossiers;
  assert.deepStrictEqual(before.nodes.map((x) => x.number), all.slice(-5, -3));
  assert.strictEqual(before.pageInfo.hasNextPage, true);
  const desc = (await s.gql(Q, { n: 1002, first: 2, order: 'DESC' })).json.data.demarche.dossiers;
  assert.deepStrictEqual(desc.nodes.map((x) => x.number), all.slice(-2).reverse());
  const descAfter = (await s.gql(Q.replace('$before:String', '$after:String').replace('before:$before', 'after:$after'), { n: 1002, first: 2, order: 'DESC', after: desc.pageInfo.endCursor })).json.data.demarche.dossiers;
  assert.deepStrictEqual(descAfter.nodes.map((x) => x.number), all.slice(-4, -2).reverse());
  assert.strictEqual(descAfter.pageInfo.hasPreviousPage, true);
  const both = await s.gql(Q, { n: 1002, first: 2, last: 2 });
  assert.match(both.json.errors[0].message, /exclusive/);
});
