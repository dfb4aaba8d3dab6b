'use strict';
// The big selection ds2grist will send validates and returns every champ kind;
// form changes (new descriptor, rename) behave as on DS; CLI behaviour.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const { buildSchema, parse, validate } = require('graphql');
const { startServer, FULL_QUERY } = require('./helpers');

const KINDS = ['Address', 'Carte', 'Checkbox', 'Civilite', 'Commune', 'Date', 'Datetime', 'DecimalNumber', 'Departement',
  'DossierLink', 'DropDownList', 'EngagementJuridique', 'Epci', 'Explication', 'HeaderSection', 'IntegerNumber',
  'LinkedDropDownList', 'MultipleDropDownList', 'Pays', 'PieceJustificative', 'RNA', 'RNF', 'Region', 'Repetition',
  'Siret', 'Text', 'TitreIdentite', 'YesNo'].map((k) => `${k}Champ`);

let s;
test.before(async () => { s = await startServer({ args: ['--procedures', '2', '--dossiers', '120', '--seed', '3', '--token', 'test-secret'] }); });
test.after(() => s.stop());

test('the full query validates against the REFERENCE schema too', () => {
  const ref = buildSchema(fs.readFileSync(process.env.DS_REFERENCE_SCHEMA || path.join(__dirname, '..', '..', '..', '..', 'shared', 'reference', 'ds-schema.graphql'), 'utf8'));
  assert.deepStrictEqual(validate(ref, parse(FULL_QUERY)).map((e) => e.message), []);
});

test('full page of 100 dossiers: every champ kind, typed values, repetitions, files', async () => {
  const t0 = process.hrtime.bigint();
  const r = await s.gql(FULL_QUERY, { demarcheNumber: 1001, first: 100 }, { operationName: 'getDemarcheDossiers' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(`full page of 100 dossiers (cold): ${ms.toFixed(1)} ms, ${r.text.length} bytes`);
  assert.strictEqual(r.status, 200);
  assert.ok(!r.json.errors, JSON.stringify(r.json.errors));
  const dem = r.json.data.demarche;
  const nodes = dem.dossiers.nodes;
  assert.strictEqual(nodes.length, 100);

  // the form covers every kind; descriptor ids are base64("Champ-<n>")
  const descs = dem.activeRevision.champDescriptors;
  for (const d of descs) assert.match(Buffer.from(d.id, 'base64').toString(), /^Champ-\d+$/);
  const rep = descs.find((d) => d.__typename === 'RepetitionChampDescriptor');
  assert.ok(rep.champDescriptors.length >= 2 && rep.champDescriptors.length <= 4);
  assert.ok(descs.find((d) => d.__typename === 'DropDownListChampDescriptor').options.length > 0);
  assert.ok(descs.find((d) => d.__typename === 'MultipleDropDownListChampDescriptor').options.length > 0);
  assert.ok(dem.activeRevision.annotationDescriptors.length >= 2);

  const seen = new Map();
  for (const n of nodes) {
    for (const c of [...n.champs, ...n.annotations]) {
      if (!seen.has(c.__typename)) seen.set(c.__typename, []);
      seen.get(c.__typename).push(c);
      assert.ok(descs.some((d) => d.id === c.champDescriptorId) || dem.activeRevision.annotationDescriptors.some((d) => d.id === c.champDescriptorId));
    }
  }
  for (const k of KINDS) assert.ok(seen.has(k), `no ${k}`);
  const filled = (k, pred) => assert.ok(seen.get(k).some(pred), `no filled ${k}`);
  filled('DateChamp', (c) => /^\d{4}-\d\d-\d\d$/.test(c.date || ''));
  filled('DatetimeChamp', (c) => /T\d\d:\d\d:\d\d\+0[12]:00$/.test(c.datetime || ''));
  filled('IntegerNumberChamp', (c) => typeof c.integerNumber === 'string' && /^\d+$/.test(c.integerNumber)); // BigInt as string
  filled('DecimalNumberChamp', (c) => typeof c.decimalNumber === 'number');
  filled('CheckboxChamp', (c) => typeof c.checked === 'boolean');
  filled('YesNoChamp', (c) => typeof c.yesNo === 'boolean');
  filled('MultipleDropDownListChamp', (c) => Array.isArray(c.values) && c.values.length > 0);
  filled('LinkedDropDownListChamp', (c) => c.primaryValue && c.secondaryValue);
  filled('AddressChamp', (c) => c.address && c.address.postalCode && c.commune && c.departement);
  filled('SiretChamp', (c) => c.etablissement && c.etablissement.siret.length === 14);
  filled('PaysChamp', (c) => c.pays && c.pays.code);
  filled('DossierLinkChamp', (c) => c.dossier && c.dossier.number);
  filled('CarteChamp', (c) => c.geoAreas.length > 0);
  filled('PieceJustificativeChamp', (c) => c.files.length > 0 && c.files.every((f) => /^https:\/\/.*expires=\d+.*Signature=/.test(f.url) && /^\d+$/.test(f.byteSizeBigInt)));
  // some champs are empty
  assert.ok([...seen.values()].flat().some((c) => c.stringValue === null && !/HeaderSection|Explication/.test(c.__typename)));
  // repetition rows have stable ids and carry champs
  const reps = seen.get('RepetitionChamp').filter((c) => c.rows.length > 0);
  assert.ok(reps.length > 0);
  for (const c of reps) for (const row of c.rows) { assert.ok(row.id); assert.ok(row.champs.length >= 2); }
  const t1 = process.hrtime.bigint();
  const again = await s.gql(FULL_QUERY, { demarcheNumber: 1001, first: 100 }, { operationName: 'getDemarcheDossiers' });
  console.log(`full page of 100 dossiers (warm): ${(Number(process.hrtime.bigint() - t1) / 1e6).toFixed(1)} ms round trip, server X-Runtime ${(Number(again.headers.get('x-runtime')) * 1000).toFixed(1)} ms`);
  const ids = (res) => res.json.data.demarche.dossiers.nodes.flatMap((n) => n.champs.filter((c) => c.rows).flatMap((c) => c.rows.map((row) => row.id)));
  assert.deepStrictEqual(ids(again), ids(r));

  // dossier-level fields
  const states = new Set(nodes.map((n) => n.state));
  for (const st of ['en_construction', 'en_instruction', 'accepte', 'refuse', 'sans_suite']) assert.ok(states.has(st), `no ${st}`);
  const types = new Set(nodes.map((n) => n.demandeur.__typename));
  assert.ok(types.has('PersonnePhysique') && types.has('PersonneMorale'));
  assert.ok(nodes.some((n) => n.archived));
  assert.ok(nodes.every((n) => n.usager.email && n.groupeInstructeur.label && n.traitements.length >= 1));
  assert.ok(nodes.some((n) => n.labels.length && n.labels[0].color));
  assert.ok(nodes.some((n) => n.motivation));
  assert.ok(JSON.stringify(nodes).includes('é'), 'French accents expected');
});

test('dossier(number) and the admin full view agree', async () => {
  const list = (await s.admin('GET', '/procedures/1001/dossiers')).json.dossiers;
  const n = list[5].number;
  const api = await s.gql(FULL_QUERY, { dossierNumber: n }, { operationName: 'getDossier' });
  const adm = await s.admin('GET', `/procedures/1001/dossiers/${n}`);
  assert.strictEqual(adm.status, 200);
  const strip = (o) => JSON.parse(JSON.stringify(o).replace(/"url":"[^"]*"/g, '"url":""').replace(/"(startCursor|endCursor)":"[^"]*"/g, ''));
  assert.deepStrictEqual(strip(adm.json), strip(api.json.data.dossier));
});

test('form change: a new descriptor appears in activeRevision, on new and on touched dossiers; rename keeps the id', async () => {
  const add = await s.admin('POST', '/procedures/1002/champ-descriptors', { type: 'TextChampDescriptor', label: 'Numéro de téléphone portable' });
  assert.strictEqual(add.status, 201);
  const id = add.json.id;
  const rev = await s.gql('{ demarche(number: 1002) { activeRevision { id champDescriptors { id label } } revisions { id } } }');
  assert.ok(rev.json.data.demarche.activeRevision.champDescriptors.some((d) => d.id === id));
  assert.strictEqual(rev.json.data.demarche.revisions.length, 2);
  const list = (await s.admin('GET', '/procedures/1002/dossiers')).json.dossiers;
  const old = list[0].number; const touched = list[1].number;
  await s.admin('PATCH', `/procedures/1002/dossiers/${touched}`, { champs: { [id]: '06 12 34 56 78' } });
  const created = (await s.admin('POST', '/procedures/1002/dossiers', {})).json.number;
  const Q = 'query($n:Int!){dossier(number:$n){champs{champDescriptorId label stringValue}}}';
  const has = async (n) => (await s.gql(Q, { n })).json.data.dossier.champs.find((c) => c.champDescriptorId === id);
  assert.strictEqual(await has(old), undefined);
  assert.strictEqual((await has(touched)).stringValue, '06 12 34 56 78');
  assert.ok(await has(created));
  const ren = await s.admin('PATCH', `/procedures/1002/champ-descriptors/${encodeURIComponent(id)}`, { label: 'Téléphone portable' });
  assert.strictEqual(ren.status, 200);
  await s.admin('PATCH', `/procedures/1002/dossiers/${touched}`, { motivation: 'x' });
  assert.strictEqual((await has(touched)).label, 'Téléphone portable');
});

test('admin patch: state change adds a traitement; annotations bump dateDerniereModificationAnnotations', async () => {
  const n = (await s.admin('POST', '/procedures/1001/dossiers', {})).json.number;
  const rev = await s.gql('{ demarche(number: 1001) { activeRevision { annotationDescriptors { __typename id } } } }');
  const annot = rev.json.data.demarche.activeRevision.annotationDescriptors.find((a) => a.__typename === 'TextChampDescriptor');
  const p = await s.admin('PATCH', `/procedures/1001/dossiers/${n}`, { state: 'accepte', motivation: 'Projet retenu', annotations: { [annot.id]: 'Dossier complet, RAS' } });
  assert.strictEqual(p.status, 200);
  const d = (await s.admin('GET', `/procedures/1001/dossiers/${n}`)).json;
  assert.strictEqual(d.state, 'accepte');
  assert.strictEqual(d.motivation, 'Projet retenu');
  assert.deepStrictEqual(d.traitements.map((t) => t.state), ['en_construction', 'accepte']);
  assert.strictEqual(d.dateDerniereModificationAnnotations, p.json.dateDerniereModification);
  assert.ok(d.dateTraitement);
  const a = d.annotations.find((x) => x.champDescriptorId === annot.id);
  assert.deepStrictEqual([a.stringValue, a.value, a.updatedAt], ['Dossier complet, RAS', 'Dossier complet, RAS', p.json.dateDerniereModification]);
});

test('admin patch: avis, messages and a Carte champ\'s geo areas replaced, then emptied', async () => {
  const n = (await s.admin('POST', '/procedures/1001/dossiers', {})).json.number;
  const rev = await s.gql('{ demarche(number: 1001) { activeRevision { champDescriptors { __typename id } } } }');
  const carte = rev.json.data.demarche.activeRevision.champDescriptors.find((c) => c.__typename === 'CarteChampDescriptor');
  const p = await s.admin('PATCH', `/procedures/1001/dossiers/${n}`, {
    avis: [{ id: 'avis-1', question: 'Q ?', reponse: 'Oui', expert: { email: 'x@gouv.fr' } }],
    messages: [{ id: 'msg-1', body: 'Bonjour' }, { id: 'msg-2', body: 'Merci', email: 'u@exemple.fr' }],
    champs: { [carte.id]: [{ id: 'zone-1', description: 'Parcelle nord' }] },
  });
  assert.strictEqual(p.status, 200);
  const Q = `query($n:Int!){dossier(number:$n){avis{id question reponse expert{email}} messages{id body email}
    champs{champDescriptorId ... on CarteChamp{geoAreas{__typename id description source geometry{type}}}}}}`;
  let d = (await s.gql(Q, { n })).json.data.dossier;
  assert.deepStrictEqual(d.avis, [{ id: 'avis-1', question: 'Q ?', reponse: 'Oui', expert: { email: 'x@gouv.fr' } }]);
  assert.deepStrictEqual(d.messages.map((m) => [m.id, m.body, m.email]), [['msg-1', 'Bonjour', 'contact@demarches-simplifiees.fr'], ['msg-2', 'Merci', 'u@exemple.fr']]);
  const areas = d.champs.find((c) => c.champDescriptorId === carte.id).geoAreas;
  assert.deepStrictEqual(areas, [{ __typename: 'SelectionUtilisateur', id: 'zone-1', description: 'Parcelle nord', source: 'selection_utilisateur', geometry: { type: 'Polygon' } }]);
  await s.admin('PATCH', `/procedures/1001/dossiers/${n}`, { avis: [], messages: [], champs: { [carte.id]: [] } });
  d = (await s.gql(Q, { n })).json.data.dossier;
  assert.deepStrictEqual([d.avis, d.messages, d.champs.find((c) => c.champDescriptorId === carte.id).geoAreas], [[], [], []]);
  assert.strictEqual((await s.admin('PATCH', `/procedures/1001/dossiers/${n}`, { avis: [{ question: 'no id' }] })).status, 400);
});

test('attachments: with fileBaseUrl "self" the signed URLs are served until they expire', async () => {
  await s.admin('POST', '/config', { fileBaseUrl: 'self' });
  try {
    const r = await s.gql('{ demarche(number: 1001) { dossiers(first: 30) { nodes { champs { ... on PieceJustificativeChamp { files { filename url } } } } } } }');
    const files = r.json.data.demarche.dossiers.nodes.flatMap((n) => n.champs.flatMap((c) => c.files || []));
    assert.ok(files.length > 0);
    const url = files[0].url;
    assert.ok(url.startsWith(s.base));
    const ok = await fetch(url);
    assert.strictEqual(ok.status, 200);
    assert.match(await ok.text(), /^%PDF/);
    const expired = await fetch(url.replace(/expires=\d+/, 'expires=1000'));
    assert.strictEqual(expired.status, 403);
  } finally {
    await s.admin('POST', '/config', { fileBaseUrl: null });
  }
});

test('CLI: one listening line on stdout, port file written', async () => {
  assert.match(s.output(), /^ds-emulator listening on http:\/\/127\.0\.0\.1:\d+\n$/);
  assert.strictEqual(Number(fs.readFileSync(s.portFile, 'utf8')), s.port);
});

test('startup: 20 procedures x 5,000 dossiers start within a few seconds; SIGTERM exits 0', async () => {
  const t0 = Date.now();
  const big = await startServer({ args: ['--procedures', '20', '--dossiers', '5000', '--token', 'test-secret'] });
  const ms = Date.now() - t0;
  console.log(`20 x 5000 dossiers: started in ${ms} ms`);
  const r = await big.gql('{ demarche(number: 1020) { dossiers(first: 1) { nodes { number } } } }');
  assert.strictEqual(r.json.data.demarche.dossiers.nodes.length, 1);
  assert.strictEqual(await big.stop(), 0);
});

// The query ds2grist-producer actually sends (producer/queries/dossiers.graphql): the
// emulator answers it in full, with the typed values under the producer's aliases.
test("the producer's own query: a full page with every typed value", async (t) => {
  const q = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'producer', 'queries', 'dossiers.graphql'), 'utf8');
  // its weight on the emulator's cost model (the cap is 60,000; DS published ~37,600 for a full page)
  const { analyse } = require('../lib/api');
  const schema = buildSchema(fs.readFileSync(path.join(__dirname, '..', 'schema.graphql'), 'utf8'));
  for (const withMessages of [false, true]) {
    const a = analyse(schema, parse(q), 'getDossiers', { demarcheNumber: 1001, first: 100, withRevision: true, withMessages }, { champListFactor: 4 });
    assert.ok(a.complexity < 60000 && a.depth <= 15);
    t.diagnostic(`producer query, page of 100${withMessages ? ' with messages' : ''}: complexity ${a.complexity}, depth ${a.depth}`);
  }
  const t0 = Date.now();
  const r = await s.gql(q, { demarcheNumber: 1001, first: 100, updatedSince: '2000-01-01T00:00:00Z', withRevision: true },
    { operationName: 'getDossiers' });
  assert.strictEqual(r.status, 200);
  t.diagnostic(`producer query, page of 100: ${Math.round(JSON.stringify(r.json).length / 1024)} KiB of JSON in ${Date.now() - t0} ms`);
  assert.ok(!r.json.errors, JSON.stringify(r.json.errors));
  const dem = r.json.data.demarche;
  assert.strictEqual(dem.dossiers.nodes.length, 100);
  assert.ok(dem.activeRevision.champDescriptors.length > 10);
  const champs = dem.dossiers.nodes.flatMap((n) => [...n.champs, ...n.annotations]);
  // (empty champs have null typed fields: a predicate that throws is false)
  const ok = (pred, c) => { try { return pred(c); } catch (e) { return false; } };
  const has = (kind, pred) => assert.ok(champs.some((c) => c.__typename === kind && ok(pred, c)), `no ${kind} with its value`);
  has('IntegerNumberChamp', (c) => typeof c.integerNumber === 'string');
  has('DecimalNumberChamp', (c) => typeof c.decimalNumber === 'number');
  has('CheckboxChamp', (c) => typeof c.checked === 'boolean');
  has('YesNoChamp', (c) => typeof c.yesNo === 'boolean');
  has('DateChamp', (c) => /^\d{4}-\d\d-\d\d$/.test(c.date || ''));
  has('DatetimeChamp', (c) => typeof c.datetime === 'string');
  has('MultipleDropDownListChamp', (c) => Array.isArray(c.values));
  has('PieceJustificativeChamp', (c) => Array.isArray(c.files) && c.files.length > 0);
  has('RepetitionChamp', (c) => c.rows.length > 0 && c.rows[0].champs.length > 0);
  // composite kinds: the typed fields the worker's sub-columns read
  has('CommuneChamp', (c) => /^\d[\dAB]\d{3}$/.test(c.commune.code) && c.commune.postalCode && c.departement.code);
  has('AddressChamp', (c) => c.address.cityCode && c.address.streetAddress && c.address.regionCode && c.address.geometry.type === 'Point');
  has('PaysChamp', (c) => /^[A-Z]{2}$/.test(c.pays.code));
  has('RegionChamp', (c) => /^\d\d$/.test(c.region.code));
  has('DepartementChamp', (c) => c.departement.code && c.departement.name);
  has('EpciChamp', (c) => /^\d{9}$/.test(c.epci.code));
  has('SiretChamp', (c) => c.etablissement.entreprise.raisonSociale && c.etablissement.naf && c.etablissement.address.cityCode);
  has('RNAChamp', (c) => c.rna.title && c.commune.code);
  has('RNFChamp', (c) => c.rnf.title);
  has('EngagementJuridiqueChamp', (c) => /^\d+$/.test(c.engagementJuridique.montantEngage));
  has('DossierLinkChamp', (c) => c.dossier && Number.isInteger(c.dossier.number) && String(c.dossier.number) === c.stringValue);
  has('LinkedDropDownListChamp', (c) => typeof c.primaryValue === 'string');
  has('CarteChamp', (c) => c.geoAreas.some((g) => g.__typename === 'ParcelleCadastrale' && g.section && g.numero && g.surface && g.geometry.type === 'Polygon'));
  // DS's typed columns on every champ, values under the producer's aliases, ids stable across dossiers
  has('AddressChamp', (c) => c.columns.some((k) => k.__typename === 'TextColumn' && k.label.endsWith('– Code INSEE') && k.stringValue === c.address.cityCode));
  has('IntegerNumberChamp', (c) => c.columns[0].__typename === 'IntegerColumn' && c.columns[0].integerValue === c.integerNumber);
  has('DateChamp', (c) => c.columns[0].__typename === 'DateColumn' && c.columns[0].dateValue === c.date);
  const ids = new Map();
  for (const c of champs) for (const k of c.columns) {
    const key = `${c.champDescriptorId}|${k.label}`;
    assert.ok(!ids.has(key) || ids.get(key) === k.id, `column ${key} has two ids`);
    ids.set(key, k.id);
  }
  // avis in the listing; messages only when asked for (withMessages)
  assert.ok(dem.dossiers.nodes.some((n) => n.avis.length && n.avis[0].expert.email && n.avis[0].dateQuestion));
  assert.ok(dem.dossiers.nodes.every((n) => !('messages' in n)));
  const withMessages = await s.gql(q, { demarcheNumber: 1001, first: 5, withRevision: false, withMessages: true },
    { operationName: 'getDossiers' });
  assert.ok(!withMessages.json.errors, JSON.stringify(withMessages.json.errors));
  assert.ok(withMessages.json.data.demarche.dossiers.nodes.every((n) => n.messages.length && n.messages[0].body));
});

test('narrow form: POST /admin/procedures with champs: N gives N data champs and no repetition', async () => {
  const r = await s.admin('POST', '/procedures', { number: 1900, dossiers: 3, champs: 30 });
  assert.strictEqual(r.status, 201);
  const rev = await s.gql('{ demarche(number: 1900) { activeRevision { champDescriptors { __typename label } } dossiers(first: 3) { nodes { champs { __typename } } } } }');
  const descs = rev.json.data.demarche.activeRevision.champDescriptors;
  assert.strictEqual(descs.length, 30);
  assert.ok(!descs.some((d) => /Repetition|HeaderSection|Explication/.test(d.__typename)));
  assert.strictEqual(descs[29].label, 'Champ texte 30', 'Text champs beyond the form');
  for (const n of rev.json.data.demarche.dossiers.nodes) assert.strictEqual(n.champs.length, 30);
});
