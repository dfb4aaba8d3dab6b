'use strict';
// Turns store records into the objects graphql-js resolves. Fields are methods
// (graphql-js calls them with (args, context, info)), so only what a query
// selects is computed. Interface members carry __typename, which graphql-js'
// default type resolver uses.
const crypto = require('crypto');
const { hash, rng, typedId, isoParis, dateParis, dateFr, dateTimeFr, parseIso } = require('./util');
const { champTypeFor, DAY } = require('./store');
const { columnsFor } = require('./columns');

// --- reference data (French, with accents) -----------------------------------
const PRENOMS = ['Élodie', 'Jérôme', 'Chloé', 'François', 'Anaïs', 'Théo', 'Maëlle', 'Noël', 'Hélène', 'Loïc', 'Zoé', 'Benoît'];
const NOMS = ['Lefèvre', 'Moreau', 'Dupré', 'Gauthier', 'Bérard', 'Rousseau', 'Lemaître', 'Fontaine', 'Chevalier', 'Müller', 'N’Diaye', 'Le Goff'];
const COMMUNES = [
  ['Lyon 3e Arrondissement', '69383', '69003', '69', 'Rhône', '84', 'Auvergne-Rhône-Alpes', '200046977', 'Métropole de Lyon'],
  ['Besançon', '25056', '25000', '25', 'Doubs', '27', 'Bourgogne-Franche-Comté', '242500361', 'CU Grand Besançon Métropole'],
  ['Saint-Étienne', '42218', '42000', '42', 'Loire', '84', 'Auvergne-Rhône-Alpes', '244200770', 'Saint-Étienne Métropole'],
  ['Orléans', '45234', '45000', '45', 'Loiret', '24', 'Centre-Val de Loire', '244500468', 'Orléans Métropole'],
  ['Pointe-à-Pitre', '97120', '97110', '971', 'Guadeloupe', '01', 'Guadeloupe', '249710047', 'CA Cap Excellence'],
  ['Évry-Courcouronnes', '91228', '91000', '91', 'Essonne', '11', 'Île-de-France', '200059228', 'CA Grand Paris Sud Seine Essonne Sénart'],
  ['Quimper', '29232', '29000', '29', 'Finistère', '53', 'Bretagne', '242900314', 'Quimper Bretagne Occidentale'],
];
const RUES = ['rue de la République', 'avenue Jean-Jaurès', 'place de l’Église', 'chemin des Écoliers', 'boulevard Gambetta', 'allée des Châtaigniers'];
const PAYS = [['FR', 'France'], ['BE', 'Belgique'], ['DE', 'Allemagne'], ['SN', 'Sénégal'], ['MA', 'Maroc'], ['CH', 'Suisse']];
const PROJETS = ['Jardin partagé des Écoles', 'Festival « Été en fête »', 'Rénovation énergétique du gîte', 'Atelier numérique pour seniors', 'Création d’une ressourcerie', 'Café associatif « L’Étincelle »'];
const TEXTES = ['Le projet vise à créer du lien social dans le quartier grâce à des activités ouvertes à tous.', 'Nous souhaitons équiper la salle polyvalente et former les bénévoles à l’accueil du public.', 'Action menée en partenariat avec la mairie et le centre social ; calendrier prévisionnel joint.'];
const NAF = [['9499Z', 'Autres organisations fonctionnant par adhésion volontaire'], ['6201Z', 'Programmation informatique'], ['5610A', 'Restauration traditionnelle'], ['0113Z', 'Culture de légumes, de melons, de racines et de tubercules']];
const RAISONS = ['ÉCOLOGIS SARL', 'BOULANGERIE DU MARCHÉ', 'ATELIERS DE L’OUEST SAS', 'COOPÉRATIVE DES CÔTEAUX'];

const pad = (n, w) => String(n).padStart(w, '0');
const asciiEmail = (s) => s.toLowerCase().normalize('NFD').replace(/[\u0300-\u036f’ ]/g, '');

function addressFor(r) {
  const c = r.pick(COMMUNES);
  const num = String(r.int(1, 140));
  const rue = r.pick(RUES);
  return {
    label: `${num} ${rue} ${c[2]} ${c[0]}`, type: 'housenumber', streetAddress: `${num} ${rue}`, streetNumber: num, streetName: rue,
    postalCode: c[2], cityName: c[0], cityCode: c[1], departmentCode: c[3], departmentName: c[4], regionCode: c[5], regionName: c[6],
    countryCode: 'FR', countryName: 'France', geometry: { type: 'Point', coordinates: [2 + r() * 3, 45 + r() * 3] },
  };
}
const communeOf = (c) => ({ name: c[0], code: c[1], postalCode: c[2] });
const departementOf = (c) => ({ code: c[3], name: c[4] });
const siretFor = (r) => pad(r.int(100000000, 999999999), 9) + pad(r.int(1, 99999), 5);

function personneMorale(r, siret) {
  const naf = r.pick(NAF);
  const raison = r.pick(RAISONS);
  const address = addressFor(r);
  const isAsso = naf[0] === '9499Z';
  return {
    __typename: 'PersonneMorale', id: typedId('Etablissement', hash(siret)), siret, siegeSocial: r.chance(0.7), naf: naf[0], libelleNaf: naf[1], address,
    entreprise: {
      siren: siret.slice(0, 9), capitalSocial: String(r.int(1, 500) * 1000), numeroTvaIntracommunautaire: `FR${pad(r.int(10, 99), 2)}${siret.slice(0, 9)}`,
      formeJuridique: isAsso ? 'Association déclarée' : 'SAS, société par actions simplifiée', formeJuridiqueCode: isAsso ? '9220' : '5710',
      nomCommercial: raison, raisonSociale: raison, siretSiegeSocial: siret, codeEffectifEntreprise: pad(r.int(0, 22), 2),
      dateCreation: `${r.int(1970, 2022)}-${pad(r.int(1, 12), 2)}-${pad(r.int(1, 28), 2)}`, etatAdministratif: 'Actif',
      nom: null, prenom: null, enseigne: null, inlineAdresse: address.label,
      effectifMensuel: { nb: r.int(1, 200), periode: '2025-12' }, effectifAnnuel: { nb: r.int(1, 200), periode: '2025' },
    },
    association: isAsso ? { rna: `W${r.int(100000000, 999999999)}`, titre: 'ASSOCIATION DES AMIS DU PATRIMOINE', objet: 'Sauvegarde et mise en valeur du patrimoine local', dateCreation: '2004-05-17', dateDeclaration: '2019-03-02', datePublication: '2004-06-05' } : null,
  };
}

/**
 * A file's bytes: `content` when the admin API gave it, else `size` bytes made from its
 * key (deterministic, so the download always matches the checksum and the size).
 */
function fileBytes(key, size, content) {
  if (content != null) return Buffer.from(String(content), 'utf8');
  const line = Buffer.from(`%PDF-1.4 ds-emulator file ${key}\n`, 'utf8');
  const out = Buffer.alloc(Math.max(0, size));
  for (let o = 0; o < out.length; o += line.length) line.copy(out, o, 0, Math.min(line.length, out.length - o));
  return out;
}
/** DS's checksum: the base64 MD5 of the bytes (ActiveStorage), memoised per file. */
const checksums = new Map();
function fileChecksum(key, size, content) {
  const k = content != null ? `c:${content}` : `${key}:${size}`;
  let c = checksums.get(k);
  if (!c) {
    c = crypto.createHash('md5').update(fileBytes(key, size, content)).digest('base64');
    if (checksums.size > 20000) checksums.clear();
    checksums.set(k, c);
  }
  return c;
}
/** Generated files: mostly scanned safe, some pending, a few infected (from the key, not the rng). */
function scanFor(key) {
  const h = hash('scan', key) % 100;
  return h < 90 ? 'safe' : h < 97 ? 'pending' : 'infected';
}
/**
 * A signed-looking, expiring download URL (changes on every request, like DS). The file
 * (key, size, content?) is encoded in the path so that GET /storage serves its bytes;
 * ctx.fileTtlS (settings.fileUrlTtlS, default 3600) sets the expiry (<= 0: already expired).
 */
function fileFor(ctx, key, filename, contentType, size, createdMs, extra = {}) {
  const now = Date.now();
  const ttl = ctx && ctx.fileTtlS != null ? ctx.fileTtlS : 3600;
  const expires = Math.floor(now / 1000) + ttl;
  const content = extra.content != null ? String(extra.content) : null;
  const bytes = content != null ? Buffer.byteLength(content) : size;
  const sig = crypto.createHmac('sha256', 'ds-emulator').update(`${key}/${filename}/${expires}`).digest('hex');
  const base = (ctx && ctx.fileBaseUrl) || 'https://object.files.ds-emulator.example';
  const blob = content != null ? `c.${Buffer.from(content, 'utf8').toString('base64url')}` : `g.${bytes}.${encodeURIComponent(key)}`;
  const url = `${base}/storage/${blob}/${encodeURIComponent(filename)}?expires=${expires}&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature=${sig}`;
  // Downloadable files (fileBaseUrl set) carry the MD5 of their bytes; otherwise there are
  // no bytes to match and the checksum is the key's (hashing megabytes per file would slow
  // every large listing).
  const checksum = extra.checksum || (ctx && ctx.fileBaseUrl != null
    ? fileChecksum(key, bytes, content) : crypto.createHash('md5').update(key).digest('base64'));
  const virusScanResult = extra.virusScanResult || scanFor(key);
  return { filename, contentType, checksum, byteSize: bytes, byteSizeBigInt: String(bytes), url, createdAt: isoParis(createdMs), virusScanResult };
}
/** The bytes a /storage path names (fileFor's blob), or null. */
function storageBytes(blob) {
  let m = /^c\.([A-Za-z0-9_-]*)$/.exec(blob);
  if (m) return Buffer.from(m[1], 'base64url');
  m = /^g\.(\d+)\.(.+)$/.exec(blob);
  if (m) return fileBytes(decodeURIComponent(m[2]), Number(m[1]), null);
  return null;
}

// --- champ values ----------------------------------------------------------------
/** Generated value of a champ: { stringValue, ...typed fields }. `r` is seeded per champ. */
function generatedValue(kind, desc, r, ctx, env) {
  const c = () => r.pick(COMMUNES);
  switch (kind) {
    case 'TextChamp': {
      const t = desc.__typename;
      const v = t === 'EmailChampDescriptor' ? asciiEmail(`${r.pick(PRENOMS)}.${r.pick(NOMS)}@exemple.fr`)
        : t === 'PhoneChampDescriptor' ? `0${r.int(1, 7)} ${pad(r.int(0, 99), 2)} ${pad(r.int(0, 99), 2)} ${pad(r.int(0, 99), 2)} ${pad(r.int(0, 99), 2)}`
          : t === 'TextareaChampDescriptor' ? r.pick(TEXTES) : r.pick(PROJETS);
      return { stringValue: v, value: v };
    }
    case 'CiviliteChamp': { const v = r.pick(['M', 'Mme']); return { stringValue: v, value: v }; }
    case 'DateChamp': { const ms = env.depot + r.int(10, 200) * DAY; return { stringValue: dateFr(ms), date: dateParis(ms) }; }
    case 'DatetimeChamp': { const ms = Math.floor((env.depot + r.int(2, 60) * DAY) / 900000) * 900000; return { stringValue: dateTimeFr(ms), datetime: isoParis(ms) }; }
    case 'IntegerNumberChamp': { const v = r.int(1, 5000); return { stringValue: String(v), value: String(v) }; }
    case 'DecimalNumberChamp': { const v = Math.round(r() * 1e6) / 100; return { stringValue: String(v), value: v }; }
    case 'CheckboxChamp': { const v = r.chance(0.8); return { stringValue: v ? 'Oui' : 'Non', value: v }; }
    case 'YesNoChamp': { const v = r.chance(0.5); return { stringValue: v ? 'Oui' : 'Non', value: v }; }
    case 'DropDownListChamp': { const v = r.pick(desc.options || ['Option']); return { stringValue: v, value: v }; }
    case 'MultipleDropDownListChamp': {
      const opts = desc.options || [];
      const values = opts.filter(() => r.chance(0.4));
      if (!values.length && opts.length) values.push(opts[0]);
      return { stringValue: values.join(', '), values };
    }
    case 'LinkedDropDownListChamp': {
      const opts = desc.options || [];
      const primaries = opts.filter((o) => /^--.*--$/.test(o));
      const pi = r.int(0, Math.max(0, primaries.length - 1));
      const start = opts.indexOf(primaries[pi]);
      const secondaries = [];
      for (let i = start + 1; i < opts.length && !/^--.*--$/.test(opts[i]); i++) secondaries.push(opts[i]);
      const primaryValue = primaries.length ? primaries[pi].slice(2, -2) : null;
      const secondaryValue = secondaries.length ? r.pick(secondaries) : null;
      return { stringValue: [primaryValue, secondaryValue].filter(Boolean).join(' / '), primaryValue, secondaryValue };
    }
    case 'AddressChamp': {
      const address = addressFor(r);
      return { stringValue: address.label, address, commune: { name: address.cityName, code: address.cityCode, postalCode: address.postalCode }, departement: { code: address.departmentCode, name: address.departmentName } };
    }
    case 'CommuneChamp': { const x = c(); return { stringValue: `${x[0]} (${x[2]})`, commune: communeOf(x), departement: departementOf(x) }; }
    case 'DepartementChamp': { const x = c(); return { stringValue: `${x[3]} – ${x[4]}`, departement: departementOf(x) }; }
    case 'RegionChamp': { const x = c(); return { stringValue: x[6], region: { code: x[5], name: x[6] } }; }
    case 'EpciChamp': { const x = c(); return { stringValue: x[8], epci: { code: x[7], name: x[8] }, departement: departementOf(x) }; }
    case 'PaysChamp': { const p = r.chance(0.7) ? PAYS[0] : r.pick(PAYS); return { stringValue: p[1], pays: { code: p[0], name: p[1] } }; }
    case 'SiretChamp': { const s = siretFor(r); return { stringValue: s, etablissement: personneMorale(r, s) }; }
    case 'RNAChamp': {
      const id = `W${r.int(100000000, 999999999)}`; const x = c();
      return { stringValue: id, rna: { id, title: 'Les Amis de la Bibliothèque', address: addressFor(r) }, commune: communeOf(x), departement: departementOf(x) };
    }
    case 'RNFChamp': {
      const id = `${pad(r.int(1, 95), 3)}-FDD-${pad(r.int(1, 99999), 5)}-01`; const x = c();
      return { stringValue: id, rnf: { id, title: 'Fondation pour la Mémoire de l’Écrit', address: addressFor(r) }, commune: communeOf(x), departement: departementOf(x) };
    }
    case 'EngagementJuridiqueChamp': {
      const id = String(r.int(1300000000, 1399999999));
      return { stringValue: id, engagementJuridique: { montantEngage: String(r.int(1000, 90000)), montantPaye: String(r.int(0, 1000)) } };
    }
    case 'DossierLinkChamp': {
      const n = env.linkable(r);
      return { stringValue: n == null ? null : String(n), dossierNumber: n };
    }
    case 'PieceJustificativeChamp': {
      const k = r.int(1, 2);
      const files = [];
      for (let i = 0; i < k; i++) {
        const key = `${env.number}-${desc.stableId}-${i}-${env.rowId || ''}`.replace(/-$/, '');
        files.push({ key, filename: i === 0 ? 'budget prévisionnel.pdf' : `annexe ${i}.pdf`, contentType: 'application/pdf', size: r.int(20000, 3000000) });
      }
      return { stringValue: files.map((f) => f.filename).join(', '), files };
    }
    case 'TitreIdentiteChamp': return { stringValue: '', filled: true, grantType: r.chance(0.5) ? 'france_connect' : 'piece_justificative' };
    case 'CarteChamp': {
      const areas = [];
      const n = r.int(1, 2);
      for (let i = 0; i < n; i++) {
        const x = 2 + r() * 3; const y = 45 + r() * 3;
        const geometry = { type: 'Polygon', coordinates: [[[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y]]] };
        areas.push(i === 0 ? { __typename: 'SelectionUtilisateur', id: typedId('GeoArea', hash(env.number, i)), source: 'selection_utilisateur', description: 'Zone d’intervention', geometry }
          : { __typename: 'ParcelleCadastrale', id: typedId('GeoArea', hash(env.number, i)), source: 'cadastre', description: null, geometry, commune: '69383', prefixe: '000', section: 'AB', numero: String(r.int(1, 999)), surface: String(r.int(100, 9000)) });
      }
      return { stringValue: `${areas.length} zone(s)`, geoAreas: areas };
    }
    default: return { stringValue: null };
  }
}

/** Empty champ: typed fields null (or the schema's non-null defaults). */
function emptyValue(kind) {
  switch (kind) {
    case 'CheckboxChamp': return { stringValue: 'Non', value: false };
    case 'MultipleDropDownListChamp': return { stringValue: '', values: [] };
    case 'PieceJustificativeChamp': return { stringValue: '', files: [] };
    case 'CarteChamp': return { stringValue: '', geoAreas: [] };
    case 'TitreIdentiteChamp': return { stringValue: '', filled: false, grantType: 'piece_justificative' };
    case 'RepetitionChamp': return { stringValue: '', rowCount: 0 };
    default: return { stringValue: null };
  }
}

/** Value set through the admin API (string or JSON value) → typed fields. */
function overrideValue(kind, v, generated) {
  if (v === null || v === undefined || v === '') return emptyValue(kind);
  const s = Array.isArray(v) ? v.join(', ') : String(v);
  const truthy = v === true || /^(true|oui|on|1)$/i.test(s);
  switch (kind) {
    case 'TextChamp': case 'DropDownListChamp': case 'CiviliteChamp': return { stringValue: s, value: s };
    case 'IntegerNumberChamp': return { stringValue: String(parseInt(s, 10)), value: String(parseInt(s, 10)) };
    case 'DecimalNumberChamp': return { stringValue: String(parseFloat(s)), value: parseFloat(s) };
    case 'CheckboxChamp': case 'YesNoChamp': return { stringValue: truthy ? 'Oui' : 'Non', value: truthy };
    case 'DateChamp': { const ms = Date.parse(`${s}T12:00:00Z`); return { stringValue: dateFr(ms), date: s }; }
    case 'DatetimeChamp': { const ms = parseIso(s); return { stringValue: dateTimeFr(ms), datetime: isoParis(ms) }; }
    case 'MultipleDropDownListChamp': { const values = Array.isArray(v) ? v.map(String) : s.split(/\s*,\s*/); return { stringValue: values.join(', '), values }; }
    case 'LinkedDropDownListChamp': { const [a, b] = s.split(/\s*\/\s*/); return { stringValue: s, primaryValue: a || null, secondaryValue: b || null }; }
    case 'RepetitionChamp': return { stringValue: '', rowCount: parseInt(s, 10) || 0 };
    case 'DossierLinkChamp': return { stringValue: s, dossierNumber: parseInt(s, 10) };
    case 'PieceJustificativeChamp': {
      if (!Array.isArray(v) || v.some((f) => typeof f !== 'object' || f === null)) return { ...generated, stringValue: s };
      // files given whole: [{key, filename, contentType?, content? | size?, virusScanResult?, checksum?}]
      const files = v.map((f, i) => ({ key: `admin-${i}`, contentType: 'application/pdf', size: 1000, ...f, filename: f.filename || `fichier ${i}.pdf` }));
      return { stringValue: files.map((f) => f.filename).join(', '), files };
    }
    case 'CarteChamp': {
      if (!Array.isArray(v) || v.some((a) => typeof a !== 'object' || a === null)) return { ...generated, stringValue: s };
      // geo areas given whole: [{id, description?, source?, geometry?, __typename?, ...parcel fields}]
      const geoAreas = v.map((a, i) => ({
        __typename: a.__typename || 'SelectionUtilisateur', source: a.source || 'selection_utilisateur', description: null,
        geometry: { type: 'Polygon', coordinates: [[[2 + i / 100, 45], [2.01 + i / 100, 45], [2.01 + i / 100, 45.01], [2 + i / 100, 45]]] }, ...a,
      }));
      return { stringValue: `${geoAreas.length} zone(s)`, geoAreas };
    }
    default: return { ...generated, stringValue: s }; // structured kinds keep their generated typed data
  }
}

/** Stable, ULID-looking row id for repetition row k of a dossier. */
function rowIdFor(number, stableId, k) {
  const A = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let h = hash('row', number, stableId, k); let s = '01J';
  for (let i = 0; i < 23; i++) { s += A[h % 32]; h = hash(h, i); }
  return s;
}

class Renderer {
  constructor(store) { this.store = store; }

  champ(ctx, proc, d, desc, { overrides, env, rowId, updatedDefault }) {
    const kind = champTypeFor(desc.__typename);
    const r = rng(hash(d.seed, desc.stableId, rowId || ''));
    const ov = overrides[rowId ? `${desc.id}|${rowId}` : desc.id] || overrides[desc.id];
    let val;
    if (kind === 'HeaderSectionChamp' || kind === 'ExplicationChamp') val = { stringValue: null };
    else if (kind === 'RepetitionChamp') val = { stringValue: '', rowCount: r.int(0, 3) };
    else if (r.chance(0.08) && kind !== 'CheckboxChamp') val = emptyValue(kind); // some champs left empty
    else val = generatedValue(kind, desc, r, ctx, { ...env, rowId });
    if (ov) val = overrideValue(kind, ov.v, val);
    const champId = rowId ? typedId('Champ', `${desc.stableId}|${rowId}`) : desc.id;
    const base = {
      __typename: kind, id: champId, champDescriptorId: desc.id, label: desc.label, prefilled: false,
      stringValue: val.stringValue, updatedAt: isoParis(ov ? ov.t : updatedDefault),
      columns: () => columnsFor(kind, desc, val),
    };
    const self = this;
    switch (kind) {
      case 'HeaderSectionChamp': base.level = desc.level || 1; break;
      case 'RepetitionChamp':
        base.rows = () => {
          const rows = [];
          for (let k = 0; k < val.rowCount; k++) {
            const rid = rowIdFor(d.number, desc.stableId, k);
            rows.push({ id: rid, champs: () => (desc.champDescriptors || []).map((sub) => self.champ(ctx, proc, d, sub, { overrides, env, rowId: rid, updatedDefault })) });
          }
          return rows;
        };
        base.stringValue = val.rowCount ? `${val.rowCount} ligne(s)` : '';
        break;
      case 'PieceJustificativeChamp':
        base.files = () => (val.files || []).map((f) => fileFor(ctx, f.key, f.filename, f.contentType, f.size, d.dateDepot, f));
        break;
      case 'DossierLinkChamp':
        base.dossier = () => {
          if (val.dossierNumber == null) return null;
          const found = self.store.findDossier(val.dossierNumber);
          // only dossiers of the same procedure are resolved (others stay a number in stringValue)
          return found && found.proc === proc ? self.dossier(ctx, found.proc, found.d) : null;
        };
        break;
      default: Object.assign(base, val);
    }
    return base;
  }

  champs(ctx, proc, d, descriptors, overrides, updatedDefault, idFilter) {
    const env = {
      number: d.number, depot: d.dateDepot,
      // a linked dossier: an earlier dossier of the same procedure, if any
      linkable: (r) => (r.chance(0.6) && d.number > 1000001 ? d.number - r.int(1, 20) : null),
    };
    const list = idFilter ? descriptors.filter((x) => x.id === idFilter) : descriptors;
    return list.map((desc) => this.champ(ctx, proc, d, desc, { overrides, env, updatedDefault }));
  }

  demandeur(proc, d) {
    const r = rng(hash(d.seed, 'demandeur'));
    if (d.demandeurKind === 'PersonnePhysique') {
      const prenom = r.pick(PRENOMS); const nom = r.pick(NOMS);
      return { __typename: 'PersonnePhysique', id: typedId('Individual', d.number), civilite: r.pick(['M', 'Mme']), nom, prenom, email: null, dateDeNaissance: r.chance(0.5) ? `${r.int(1950, 2004)}-${pad(r.int(1, 12), 2)}-${pad(r.int(1, 28), 2)}` : null };
    }
    const siret = siretFor(r);
    if (d.demandeurKind === 'PersonneMoraleIncomplete') return { __typename: 'PersonneMoraleIncomplete', id: typedId('Etablissement', d.number), siret };
    return { ...personneMorale(r, siret), id: typedId('Etablissement', d.number) };
  }

  dossier(ctx, proc, d) {
    const self = this;
    const rev = () => proc.revisions[d.revIdx];
    const terminal = ['accepte', 'refuse', 'sans_suite'].includes(d.state);
    const userR = rng(hash(d.seed, 'usager'));
    return {
      id: typedId('Dossier', d.number), number: d.number, state: d.state, archived: d.archived, prefilled: false,
      connectionUsager: 'password', deposeParUnTiers: false, nomMandataire: null, prenomMandataire: null,
      dateDepot: isoParis(d.dateDepot), dateDerniereModification: isoParis(d.updated),
      dateDerniereModificationChamps: isoParis(d.champsUpdated), dateDerniereModificationAnnotations: isoParis(d.annotationsUpdated),
      datePassageEnConstruction: isoParis(d.datePassageEnConstruction), datePassageEnInstruction: isoParis(d.datePassageEnInstruction),
      dateTraitement: isoParis(d.dateTraitement), dateExpiration: isoParis((d.dateTraitement || d.dateDepot) + 365 * DAY),
      dateSuppressionParUsager: null, dateSuppressionParAdministration: null, dateDerniereCorrectionEnAttente: null,
      motivation: d.motivation, motivationAttachment: null,
      attestation: () => (d.state === 'accepte' ? fileFor(ctx, `${d.number}-attestation`, `attestation-dossier-${d.number}.pdf`, 'application/pdf', 48213, d.dateTraitement) : null),
      pdf: () => fileFor(ctx, `${d.number}-pdf`, `dossier-${d.number}.pdf`, 'application/pdf', 182734, d.updated),
      usager: { id: typedId('User', d.number), email: asciiEmail(`${userR.pick(PRENOMS)}.${userR.pick(NOMS)}@exemple.fr`) },
      demandeur: () => self.demandeur(proc, d),
      groupeInstructeur: () => proc.groupes[d.groupeIdx],
      instructeurs: () => d.instructeurIdxs.map((i) => proc.instructeurs[i]),
      labels: () => d.labels.map((i) => proc.labels[i]),
      traitements: () => d.traitements.map((t) => ({ state: t.state, event: t.event, dateTraitement: isoParis(t.date), emailAgentTraitant: t.email, motivation: t.motivation })),
      avis: () => {
        if (d.avis) { // set through the admin API
          return d.avis.map((a) => ({ question: '', questionLabel: null, questionAnswer: null, reponse: null, dateQuestion: isoParis(d.dateDepot),
            dateReponse: null, claimant: null, expert: null, attachments: [], ...a }));
        }
        if (!d.datePassageEnInstruction || d.number % 3) return [];
        const asked = d.datePassageEnInstruction + 3600000;
        return [{ id: typedId('Avis', d.number), question: 'Pouvez-vous vérifier la cohérence du budget prévisionnel ?', questionLabel: 'Avis favorable ?', questionAnswer: terminal ? true : null,
          reponse: terminal ? 'Budget cohérent, avis favorable.' : null, dateQuestion: isoParis(asked), dateReponse: terminal ? isoParis(asked + DAY) : null,
          claimant: proc.instructeurs[d.instructeurIdxs[0]], expert: { id: typedId('Expert', d.number), email: 'expert.financier@ddfip.gouv.fr' }, attachments: [] }];
      },
      messages: () => (d.messages ? d.messages.map((m) => ({ email: 'contact@demarches-simplifiees.fr', body: '', createdAt: isoParis(d.dateDepot), discardedAt: null, attachments: [], ...m })) : [{ id: typedId('Commentaire', d.number), body: 'Bonjour, votre dossier a bien été déposé. Cordialement, l’équipe instructrice.', createdAt: isoParis(d.dateDepot + 60000), email: 'contact@demarches-simplifiees.fr', discardedAt: null, attachments: [] }]),
      champs: ({ id } = {}) => self.champs(ctx, proc, d, rev().champDescriptors, d.overrides, d.dateDepot, id),
      annotations: ({ id } = {}) => self.champs(ctx, proc, d, rev().annotationDescriptors, d.annotationOverrides, d.annotationsUpdated, id),
    };
  }

  revision(proc, rev) {
    return {
      id: rev.id, dateCreation: isoParis(rev.dateCreation), datePublication: isoParis(rev.datePublication),
      champDescriptors: rev.champDescriptors, annotationDescriptors: rev.annotationDescriptors,
    };
  }

  deletedDossier(rec) {
    return { id: typedId('DeletedDossier', rec.deletedId), number: rec.number, state: rec.state, reason: rec.reason, dateSupression: isoParis(rec.deletedMs) };
  }
}

module.exports = { Renderer, fileFor, storageBytes };
