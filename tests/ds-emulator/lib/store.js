'use strict';
// In-memory DS data: procedures (démarches), their revisions and champ
// descriptors, compact dossier records and deleted dossiers.
//
// Dossiers are stored compactly (a dozen scalars each); champ values are
// derived deterministically from (seed, dossier number, descriptor) when a
// query asks for them, plus explicit overrides set through the admin API.
// That keeps 20 procedures x 5,000 dossiers startable in well under a second.
const { hash, rng, typedId } = require('./util');

const DAY = 86400000;

// ---------------------------------------------------------------------------
// Monotonic clock: every change gets a distinct millisecond timestamp.
class Clock {
  constructor() { this.last = 0; this.used = new Set(); }
  now() {
    const t = Math.max(Date.now(), this.last + 1);
    this.last = t;
    return t;
  }
  /** Reserve a distinct past timestamp (initial data). */
  past(ms) {
    let t = Math.floor(ms);
    while (this.used.has(t)) t++;
    this.used.add(t);
    if (t > this.last) this.last = t;
    return t;
  }
}

// ---------------------------------------------------------------------------
// The form: one descriptor per champ kind (and Email/Phone/Textarea, which DS
// renders as TextChamp), French labels with accents.
const DROPDOWN_OPTIONS = ['Association', 'Collectivité territoriale', 'Entreprise', 'Établissement public', 'Particulier'];
const MULTI_OPTIONS = ['Éducation', 'Santé', 'Culture', 'Environnement', 'Sport', 'Économie sociale et solidaire'];
const LINKED_OPTIONS = ['--Agriculture--', 'Élevage', 'Maraîchage', 'Viticulture', '--Industrie--', 'Agroalimentaire', 'Métallurgie', '--Services--', 'Hôtellerie', 'Numérique'];
const ROLE_OPTIONS = ['Président·e', 'Trésorier·ère', 'Secrétaire', 'Bénévole'];

// [descriptor __typename, TypeDeChamp, label, extra]
const FORM = [
  ['HeaderSectionChampDescriptor', 'header_section', 'Informations générales', { level: 1 }],
  ['ExplicationChampDescriptor', 'explication', 'Veuillez lire attentivement la notice avant de compléter le formulaire.', { collapsibleExplanationEnabled: true, collapsibleExplanationText: 'Les pièces justificatives doivent être au format PDF.' }],
  ['TextChampDescriptor', 'text', 'Nom du projet'],
  ['TextareaChampDescriptor', 'textarea', 'Description détaillée du projet'],
  ['EmailChampDescriptor', 'email', 'Courriel de contact'],
  ['PhoneChampDescriptor', 'phone', 'Téléphone'],
  ['CiviliteChampDescriptor', 'civilite', 'Civilité du porteur'],
  ['DateChampDescriptor', 'date', 'Date de début prévue'],
  ['DatetimeChampDescriptor', 'datetime', 'Date et heure du rendez-vous'],
  ['IntegerNumberChampDescriptor', 'integer_number', 'Nombre de bénéficiaires'],
  ['DecimalNumberChampDescriptor', 'decimal_number', 'Montant demandé (€)'],
  ['CheckboxChampDescriptor', 'checkbox', 'J’accepte les conditions générales'],
  ['YesNoChampDescriptor', 'yes_no', 'Le projet est-il déjà financé ?'],
  ['DropDownListChampDescriptor', 'drop_down_list', 'Catégorie de la structure', { options: DROPDOWN_OPTIONS, otherOption: false }],
  ['MultipleDropDownListChampDescriptor', 'multiple_drop_down_list', 'Thématiques concernées', { options: MULTI_OPTIONS }],
  ['LinkedDropDownListChampDescriptor', 'linked_drop_down_list', 'Secteur et sous-secteur', { options: LINKED_OPTIONS }],
  ['AddressChampDescriptor', 'address', 'Adresse du siège'],
  ['CommuneChampDescriptor', 'communes', 'Commune d’implantation'],
  ['DepartementChampDescriptor', 'departements', 'Département'],
  ['RegionChampDescriptor', 'regions', 'Région'],
  ['EpciChampDescriptor', 'epci', 'EPCI de rattachement'],
  ['PaysChampDescriptor', 'pays', 'Pays de naissance'],
  ['SiretChampDescriptor', 'siret', 'SIRET de l’établissement'],
  ['RNAChampDescriptor', 'rna', 'Numéro RNA de l’association'],
  ['RNFChampDescriptor', 'rnf', 'Numéro RNF de la fondation'],
  ['EngagementJuridiqueChampDescriptor', 'engagement_juridique', 'Engagement juridique'],
  ['DossierLinkChampDescriptor', 'dossier_link', 'Dossier lié'],
  ['PieceJustificativeChampDescriptor', 'piece_justificative', 'Budget prévisionnel (PDF)'],
  ['TitreIdentiteChampDescriptor', 'titre_identite', 'Pièce d’identité'],
  ['CarteChampDescriptor', 'carte', 'Localisation des parcelles'],
  ['HeaderSectionChampDescriptor', 'header_section', 'Équipe du projet', { level: 2 }],
  ['RepetitionChampDescriptor', 'repetition', 'Membres de l’équipe'],
];
const REPETITION_SUB = [
  ['TextChampDescriptor', 'text', 'Nom et prénom'],
  ['DropDownListChampDescriptor', 'drop_down_list', 'Rôle', { options: ROLE_OPTIONS, otherOption: true }],
  ['DateChampDescriptor', 'date', 'Date d’arrivée'],
  ['PieceJustificativeChampDescriptor', 'piece_justificative', 'Justificatif'],
];
const ANNOTATIONS = [
  ['TextChampDescriptor', 'text', 'Commentaire de l’instructeur'],
  ['YesNoChampDescriptor', 'yes_no', 'Dossier complet ?'],
  ['DecimalNumberChampDescriptor', 'decimal_number', 'Montant accordé (€)'],
];

/** Descriptor typename → champ typename (Email/Phone/Textarea are TextChamp). */
function champTypeFor(descTypename) {
  const base = descTypename.replace(/Descriptor$/, '');
  return ['EmailChamp', 'PhoneChamp', 'TextareaChamp', 'NumberChamp'].includes(base) ? 'TextChamp' : base;
}
const TYPE_DE_CHAMP = Object.fromEntries([...FORM, ...REPETITION_SUB, ...ANNOTATIONS].map(([t, k]) => [t, k]));

const LABELS = [['À relancer', 'yellow_tournesol'], ['Urgent', 'pink_macaron'], ['Pièces manquantes', 'beige_gris_galet'], ['Validé par le service', 'green_menthe']];
const GROUPES = ['défaut', 'Région Île-de-France', 'Outre-mer'];
const INSTRUCTEURS = ['chloe.lefebvre', 'mathieu.moreau', 'ines.garcia', 'jerome.lambert', 'helene.rousseau'];
const STATES = [['en_construction', 0.3], ['en_instruction', 0.25], ['accepte', 0.25], ['refuse', 0.1], ['sans_suite', 0.1]];
const REASONS = ['user_request', 'expired', 'instructeur_request', 'manager_request', 'user_removed'];

function formSpecs(champs) {
  if (champs === undefined || champs === null) return FORM;
  const n = Number(champs);
  if (!Number.isInteger(n) || n < 0) throw Object.assign(new Error('champs must be an integer >= 0'), { status: 400 });
  const data = FORM.filter(([t]) => !/^(HeaderSection|Explication|Repetition)ChampDescriptor$/.test(t));
  const out = data.slice(0, n);
  for (let i = out.length; i < n; i++) out.push(['TextChampDescriptor', 'text', `Champ texte ${i + 1}`]);
  return out;
}

class Store {
  constructor(seed = 1) {
    this.seed = seed;
    this.clock = new Clock();
    this.procedures = new Map(); // number -> procedure
    this.dossierIndex = new Map(); // dossier number -> procedure number
    this.nextDossierNumber = 1000001;
    this.nextDeletedId = 1;
    this.nextStableId = 101;
    this.startMs = Date.now();
    // Lazily generated procedures (national scale: thousands of them): a range of
    // numbers that exist without being held until a request or the admin API
    // names one; each is then generated like any other, with `dossiers` dossiers.
    this.lazy = [];
  }

  /** Declare procedures first..first+count-1 (with `dossiers` each), generated on first use. */
  addLazyProcedures({ first, count, dossiers = 0 }) {
    this.lazy.push({ first: Number(first), count: Number(count), dossiers: Number(dossiers) });
  }

  lazyCount() { return this.lazy.reduce((n, r) => n + r.count, 0); }

  /** The procedure, generating it if it is a lazy one not yet used; undefined if none. */
  getProcedure(number) {
    const n = Number(number);
    const p = this.procedures.get(n);
    if (p) return p;
    const r = this.lazy.find((x) => n >= x.first && n < x.first + x.count);
    return r ? this.createProcedure({ number: n, dossiers: r.dossiers }) : undefined;
  }

  // --- procedures -----------------------------------------------------------
  makeDescriptor(spec, proc) {
    const [typename, type, label, extra] = spec;
    const stableId = this.nextStableId++;
    return { stableId, id: typedId('Champ', stableId), __typename: typename, type, label, description: null, required: false, ...(extra || {}) };
  }

  // champs (optional): a form of that many data champs instead of the full one (the first
  // ones of FORM without sections, explications or the repetition, Text champs when more are
  // asked), for benchmarks of narrow tables.
  createProcedure({ number, dossiers = 0, title, deleted = 0, champs } = {}) {
    if (number == null) number = Math.max(1000, ...this.procedures.keys(), ...this.lazy.map((r) => r.first + r.count - 1)) + 1;
    if (this.procedures.has(number)) throw Object.assign(new Error(`procedure ${number} exists`), { status: 409 });
    const r = rng(hash(this.seed, 'procedure', number));
    const created = this.clock.past(this.startMs - 400 * DAY + r() * 30 * DAY);
    const proc = {
      number, id: typedId('Procedure', number), seed: hash(this.seed, number),
      title: title || `Demande de subvention « Projets ${number} » – édition ${2024 + (number % 3)}`,
      description: 'Démarche de demande de subvention pour les projets associatifs et les collectivités.',
      state: 'publiee', dateCreation: created, datePublication: created + DAY, dateDerniereModification: created + 2 * DAY,
      revisions: [], labels: [], groupes: [], instructeurs: [],
      dossiers: new Map(), deleted: [], pendingDeleted: [],
    };
    proc.instructeurs = INSTRUCTEURS.map((n, i) => ({ id: typedId('Instructeur', number * 10 + i), email: `${n}@interieur.gouv.fr` }));
    proc.groupes = GROUPES.map((label, i) => ({ id: typedId('GroupeInstructeur', number * 10 + i), number: number * 10 + i, label, closed: false, instructeurs: proc.instructeurs.filter((_, k) => k % GROUPES.length === i || k === 0) }));
    proc.labels = LABELS.map(([name, color], i) => ({ id: typedId('Label', number * 10 + i), name, color }));
    // first revision: the whole form, 2-4 repetition sub-champs, 2-3 annotations
    const champDescriptors = formSpecs(champs).map((s) => this.makeDescriptor(s, proc));
    const rep = champDescriptors.find((d) => d.__typename === 'RepetitionChampDescriptor');
    const nSub = r.int(2, 4);
    if (rep) rep.champDescriptors = REPETITION_SUB.slice(0, nSub).map((s) => this.makeDescriptor(s, proc));
    const annotationDescriptors = ANNOTATIONS.slice(0, r.int(2, 3)).map((s) => this.makeDescriptor(s, proc));
    for (const d of champDescriptors) d.required = d.__typename !== 'HeaderSectionChampDescriptor' && d.__typename !== 'ExplicationChampDescriptor' && r.chance(0.5);
    this.addRevision(proc, champDescriptors, annotationDescriptors, created);
    this.procedures.set(number, proc);
    for (let i = 0; i < dossiers; i++) this.generateDossier(proc, i, dossiers);
    for (let i = 0; i < deleted; i++) {
      const dr = rng(hash(proc.seed, 'deleted', i));
      const num = this.nextDossierNumber++;
      this.dossierIndex.set(num, number);
      proc.deleted.push({ deletedId: this.nextDeletedId++, number: num, groupeIdx: dr.int(0, proc.groupes.length - 1), state: dr.pick(['accepte', 'refuse', 'sans_suite', 'en_construction']), reason: dr.pick(REASONS), deletedMs: this.clock.past(this.startMs - dr() * 60 * DAY) });
    }
    return proc;
  }

  addRevision(proc, champDescriptors, annotationDescriptors, at) {
    const idx = proc.revisions.length;
    const rev = { idx, id: typedId('ProcedureRevision', proc.number * 100 + idx), dateCreation: at, datePublication: at, champDescriptors, annotationDescriptors };
    proc.revisions.push(rev);
    proc.activeRevision = rev;
    proc.dateDerniereModification = at;
    return rev;
  }

  /** Form change: add a descriptor to a new active revision. */
  addDescriptor(proc, { type, label, options, annotation = false, level, description }) {
    const typename = type.endsWith('ChampDescriptor') ? type : `${type}ChampDescriptor`;
    if (!TYPE_DE_CHAMP[typename] && !/^(Textarea|Email|Phone)ChampDescriptor$/.test(typename)) {
      throw Object.assign(new Error(`unsupported descriptor type ${type}`), { status: 400 });
    }
    const kind = TYPE_DE_CHAMP[typename] || typename.replace('ChampDescriptor', '').toLowerCase();
    const extra = {};
    if (options) extra.options = options;
    else if (/DropDownList/.test(typename)) extra.options = typename.startsWith('Linked') ? LINKED_OPTIONS : DROPDOWN_OPTIONS;
    if (typename === 'HeaderSectionChampDescriptor') extra.level = level || 1;
    if (typename === 'DropDownListChampDescriptor') extra.otherOption = false;
    if (description) extra.description = description;
    const d = this.makeDescriptor([typename, kind, label || 'Nouveau champ', extra], proc);
    if (typename === 'RepetitionChampDescriptor') d.champDescriptors = [this.makeDescriptor(REPETITION_SUB[0], proc)];
    const cur = proc.activeRevision;
    const now = this.clock.now();
    this.addRevision(proc, annotation ? cur.champDescriptors : [...cur.champDescriptors, d],
      annotation ? [...cur.annotationDescriptors, d] : cur.annotationDescriptors, now);
    return d;
  }

  /** Rename a descriptor (published as a new revision; ids stay stable). */
  renameDescriptor(proc, id, label) {
    const cur = proc.activeRevision;
    const swap = (list) => list.map((d) => {
      if (d.id === id) return { ...d, label };
      if (d.champDescriptors) {
        const sub = swap(d.champDescriptors);
        if (sub.some((s, i) => s !== d.champDescriptors[i])) return { ...d, champDescriptors: sub };
      }
      return d;
    });
    const champs = swap(cur.champDescriptors);
    const annots = swap(cur.annotationDescriptors);
    const found = champs.some((d, i) => d !== cur.champDescriptors[i]) || annots.some((d, i) => d !== cur.annotationDescriptors[i]);
    if (!found) throw Object.assign(new Error(`descriptor ${id} not found`), { status: 404 });
    this.addRevision(proc, champs, annots, this.clock.now());
  }

  // --- dossiers -------------------------------------------------------------
  generateDossier(proc, i, total) {
    const number = this.nextDossierNumber++;
    const r = rng(hash(proc.seed, 'dossier', number));
    let x = r(); let state = 'en_construction';
    for (const [s, p] of STATES) { if (x < p) { state = s; break; } x -= p; }
    // spread deposits over the past ~6 months, roughly in number order
    const depot = this.clock.past(this.startMs - 180 * DAY + ((i + r()) / Math.max(total, 1)) * 170 * DAY);
    let instruction = null; let traitement = null;
    if (state !== 'en_construction') instruction = depot + r() * 5 * DAY;
    if (['accepte', 'refuse', 'sans_suite'].includes(state)) traitement = instruction + r() * 5 * DAY;
    const last = traitement || instruction || depot;
    const updated = this.clock.past(Math.min(last + r() * 3 * DAY, this.startMs - 60000 - r() * DAY));
    const d = this.newDossierRecord(proc, number, state, depot, updated, r);
    d.datePassageEnInstruction = instruction == null ? null : Math.floor(instruction);
    d.dateTraitement = traitement == null ? null : Math.floor(traitement);
    d.archived = traitement != null && r.chance(0.15);
    d.champsUpdated = Math.min(updated, depot + Math.floor(r() * DAY));
    d.annotationsUpdated = instruction ? Math.min(updated, Math.floor(instruction)) : depot;
    d.traitements = this.initialTraitements(proc, d, r);
    return d;
  }

  newDossierRecord(proc, number, state, depot, updated, r) {
    const x = r();
    const d = {
      number, procNumber: proc.number, revIdx: proc.activeRevision.idx, seed: hash(proc.seed, number),
      state, archived: false, dateDepot: depot, datePassageEnConstruction: depot,
      datePassageEnInstruction: null, dateTraitement: null, updated, champsUpdated: depot, annotationsUpdated: depot,
      demandeurKind: x < 0.7 ? 'PersonnePhysique' : x < 0.95 ? 'PersonneMorale' : 'PersonneMoraleIncomplete',
      groupeIdx: r.int(0, proc.groupes.length - 1), instructeurIdxs: [r.int(0, 4)],
      labels: r.chance(0.3) ? [r.int(0, proc.labels.length - 1)] : [],
      motivation: null, overrides: {}, annotationOverrides: {}, version: 0, traitements: [],
    };
    proc.dossiers.set(number, d);
    this.dossierIndex.set(number, proc.number);
    return d;
  }

  initialTraitements(proc, d, r) {
    const agent = proc.instructeurs[d.instructeurIdxs[0]].email;
    const t = [{ state: 'en_construction', event: 'depose', date: d.dateDepot, email: null, motivation: null }];
    if (d.datePassageEnInstruction) t.push({ state: 'en_instruction', event: 'passe_en_instruction', date: d.datePassageEnInstruction, email: agent, motivation: null });
    if (d.dateTraitement) {
      const event = { accepte: 'accepte', refuse: 'refuse', sans_suite: 'classe_sans_suite' }[d.state];
      d.motivation = d.state === 'accepte' ? (r.chance(0.5) ? 'Dossier complet, projet conforme aux critères d’éligibilité.' : null)
        : d.state === 'refuse' ? 'Le projet ne répond pas aux critères de l’appel à projets.' : 'Dossier incomplet après relance.';
      t.push({ state: d.state, event, date: d.dateTraitement, email: agent, motivation: d.motivation });
    }
    return t;
  }

  createDossier(proc, { state = 'en_construction', champs } = {}) {
    const now = this.clock.now();
    const number = this.nextDossierNumber++;
    const d = this.newDossierRecord(proc, number, 'en_construction', now, now, rng(hash(proc.seed, 'dossier', number)));
    d.traitements = [{ state: 'en_construction', event: 'depose', date: now, email: null, motivation: null }];
    if (champs) Object.assign(d.overrides, this.stampOverrides(champs, now));
    if (state !== 'en_construction') this.applyState(proc, d, state, null, now);
    return d;
  }

  stampOverrides(values, t) {
    const out = {};
    for (const [k, v] of Object.entries(values)) out[k] = { v, t };
    return out;
  }

  applyState(proc, d, state, motivation, now) {
    const STATES_OK = ['en_construction', 'en_instruction', 'accepte', 'refuse', 'sans_suite'];
    if (!STATES_OK.includes(state)) throw Object.assign(new Error(`bad state ${state}`), { status: 400 });
    if (state === d.state) return;
    const agent = proc.instructeurs[d.instructeurIdxs[0]].email;
    if (state === 'en_construction') {
      d.datePassageEnInstruction = null; d.dateTraitement = null; d.motivation = null;
      d.traitements.push({ state, event: 'repasse_en_construction', date: now, email: agent, motivation: null });
    } else if (state === 'en_instruction') {
      const event = d.dateTraitement ? 'repasse_en_instruction' : 'passe_en_instruction';
      d.datePassageEnInstruction = now; d.dateTraitement = null; d.motivation = null;
      d.traitements.push({ state, event, date: now, email: agent, motivation: null });
    } else {
      if (!d.datePassageEnInstruction) d.datePassageEnInstruction = now;
      d.dateTraitement = now;
      if (motivation !== undefined && motivation !== null) d.motivation = motivation;
      const event = { accepte: 'accepte', refuse: 'refuse', sans_suite: 'classe_sans_suite' }[state];
      d.traitements.push({ state, event, date: now, email: agent, motivation: d.motivation });
    }
    d.state = state;
  }

  /**
   * Apply an admin change. Everything except a labels-only change bumps the
   * update time (and moves the dossier to the active revision); label changes
   * do not change dateDerniereModification, as on the real service.
   */
  patchDossier(proc, d, body) {
    const { state, archived, motivation, champs, annotations, labels, avis, messages } = body || {};
    if (labels !== undefined) {
      if (!Array.isArray(labels)) throw Object.assign(new Error('labels must be an array of names'), { status: 400 });
      d.labels = labels.map((name) => {
        const i = proc.labels.findIndex((l) => l.name === name);
        if (i < 0) throw Object.assign(new Error(`unknown label ${name}`), { status: 400 });
        return i;
      });
    }
    const other = [state, archived, motivation, champs, annotations, avis, messages].some((v) => v !== undefined);
    if (!other) return d;
    for (const [name, list] of [['avis', avis], ['messages', messages]]) {
      if (list !== undefined && list !== null && !(Array.isArray(list) && list.every((x) => x && typeof x.id === 'string'))) {
        throw Object.assign(new Error(`${name} must be an array of objects with an id, or null`), { status: 400 });
      }
    }
    const now = this.clock.now();
    if (avis !== undefined) d.avis = avis; // null: the generated ones again
    if (messages !== undefined) d.messages = messages;
    if (state !== undefined) this.applyState(proc, d, state, motivation, now);
    if (motivation !== undefined && state === undefined) d.motivation = motivation;
    if (archived !== undefined) d.archived = !!archived;
    if (champs) { Object.assign(d.overrides, this.stampOverrides(champs, now)); d.champsUpdated = now; }
    if (annotations) { Object.assign(d.annotationOverrides, this.stampOverrides(annotations, now)); d.annotationsUpdated = now; }
    this.bump(proc, d, now);
    return d;
  }

  bump(proc, d, now = this.clock.now()) {
    d.updated = now;
    d.revIdx = proc.activeRevision.idx;
    d.version++;
  }

  /** Bulk change: K dossiers get a real champ change (the project name) and a new update time. */
  touch(proc, count) {
    const all = [...proc.dossiers.values()].sort((a, b) => a.updated - b.updated || a.number - b.number);
    const picked = all.slice(0, Math.min(count, all.length));
    const text = proc.activeRevision.champDescriptors.find((c) => c.__typename === 'TextChampDescriptor');
    for (const d of picked) {
      const now = this.clock.now();
      if (text) d.overrides[text.id] = { v: `Projet modifié n°${d.version + 1} (dossier ${d.number})`, t: now };
      d.champsUpdated = now;
      this.bump(proc, d, now);
    }
    return picked.map((d) => d.number);
  }

  deleteDossier(proc, d, reason = 'user_request', pending = false) {
    if (!REASONS.includes(reason) && !['procedure_removed', 'user_expired'].includes(reason)) {
      throw Object.assign(new Error(`bad reason ${reason}`), { status: 400 });
    }
    proc.dossiers.delete(d.number);
    const rec = { deletedId: this.nextDeletedId++, number: d.number, groupeIdx: d.groupeIdx, state: d.state, reason, deletedMs: this.clock.now() };
    (pending ? proc.pendingDeleted : proc.deleted).push(rec);
    return rec;
  }

  findDossier(number) {
    const pn = this.dossierIndex.get(number);
    const proc = pn != null ? this.getProcedure(pn) : null;
    const d = proc ? proc.dossiers.get(number) : null;
    return d ? { proc, d } : null;
  }
}

module.exports = { Store, champTypeFor, DAY };
