#!/usr/bin/env node
// Regenerates ../schema.graphql from the reference DS schema.
//
// The subset is declared below as { TypeName: [fields] | '*' }. Fields, arguments,
// directives and descriptions are copied verbatim from the reference AST, so the
// subset cannot drift from it. Run:  node scripts/extract-subset.js [REFERENCE]
// (default: reference/ds-schema.graphql, a copy of the published DS schema). The test
// test/schema-subset.test.js checks the result independently.
'use strict';
const fs = require('fs');
const path = require('path');
const { parse, print, Kind } = require('graphql');

const REF = process.argv[2] || path.join(__dirname, '..', '..', '..', '..', 'shared', 'reference', 'ds-schema.graphql');
const OUT = path.join(__dirname, '..', 'schema.graphql');

const CHAMP = ['champDescriptorId', 'columns', 'id', 'label', 'prefilled', 'stringValue', 'updatedAt'];
const DESC = ['description', 'id', 'label', 'required', 'type'];

// Champ kinds emitted by the emulator (notes: "Kinds (schema types ending in Champ)").
const CHAMP_TYPES = {
  AddressChamp: ['address', 'commune', 'departement'],
  CarteChamp: ['geoAreas'],
  CheckboxChamp: ['value'],
  CiviliteChamp: ['value'],
  CommuneChamp: ['commune', 'departement'],
  DateChamp: ['date'],
  DatetimeChamp: ['datetime'],
  DecimalNumberChamp: ['value'],
  DepartementChamp: ['departement'],
  DossierLinkChamp: ['dossier'],
  DropDownListChamp: ['value'],
  EngagementJuridiqueChamp: ['engagementJuridique'],
  EpciChamp: ['departement', 'epci'],
  ExplicationChamp: [],
  HeaderSectionChamp: ['level'],
  IntegerNumberChamp: ['value'],
  LinkedDropDownListChamp: ['primaryValue', 'secondaryValue'],
  MultipleDropDownListChamp: ['values'],
  PaysChamp: ['pays'],
  PieceJustificativeChamp: ['files'],
  RNAChamp: ['commune', 'departement', 'rna'],
  RNFChamp: ['commune', 'departement', 'rnf'],
  RegionChamp: ['region'],
  RepetitionChamp: ['rows'],
  SiretChamp: ['etablissement'],
  TextChamp: ['value'],
  TitreIdentiteChamp: ['filled', 'grantType'],
  YesNoChamp: ['value'],
};
const DESCRIPTOR_TYPES = {
  AddressChampDescriptor: [], CarteChampDescriptor: [], CheckboxChampDescriptor: [],
  CiviliteChampDescriptor: [], CommuneChampDescriptor: [], DateChampDescriptor: [],
  DatetimeChampDescriptor: [], DecimalNumberChampDescriptor: [],
  DepartementChampDescriptor: ['options'], DossierLinkChampDescriptor: [],
  DropDownListChampDescriptor: ['options', 'otherOption'], EmailChampDescriptor: [],
  EngagementJuridiqueChampDescriptor: [], EpciChampDescriptor: [],
  ExplicationChampDescriptor: ['collapsibleExplanationEnabled', 'collapsibleExplanationText'],
  HeaderSectionChampDescriptor: ['level'], IntegerNumberChampDescriptor: [],
  LinkedDropDownListChampDescriptor: ['options'],
  MultipleDropDownListChampDescriptor: ['options'], PaysChampDescriptor: ['options'],
  PhoneChampDescriptor: [], PieceJustificativeChampDescriptor: ['fileTemplate'],
  RNAChampDescriptor: [], RNFChampDescriptor: [], RegionChampDescriptor: ['options'],
  RepetitionChampDescriptor: ['champDescriptors'], SiretChampDescriptor: [],
  TextChampDescriptor: [], TextareaChampDescriptor: [], TitreIdentiteChampDescriptor: [],
  YesNoChampDescriptor: [],
};

const SPEC = {
  Query: ['demarche', 'dossier', 'groupeInstructeur'],
  Demarche: ['activeRevision', 'dateCreation', 'dateDerniereModification', 'dateFermeture',
    'datePublication', 'deletedDossiers', 'description', 'dossiers', 'groupeInstructeurs', 'id',
    'labels', 'number', 'pendingDeletedDossiers', 'publishedRevision', 'revisions', 'state', 'title'],
  GroupeInstructeurWithDossiers: ['closed', 'deletedDossiers', 'dossiers', 'id', 'instructeurs',
    'label', 'number', 'pendingDeletedDossiers'],
  Dossier: ['annotations', 'archived', 'attestation', 'avis', 'champs', 'connectionUsager',
    'dateDepot', 'dateDerniereCorrectionEnAttente', 'dateDerniereModification',
    'dateDerniereModificationAnnotations', 'dateDerniereModificationChamps', 'dateExpiration',
    'datePassageEnConstruction', 'datePassageEnInstruction', 'dateSuppressionParAdministration',
    'dateSuppressionParUsager', 'dateTraitement', 'demandeur', 'deposeParUnTiers',
    'groupeInstructeur', 'id', 'instructeurs', 'labels', 'messages', 'motivation',
    'motivationAttachment', 'nomMandataire', 'number', 'pdf', 'prefilled', 'prenomMandataire',
    'state', 'traitements', 'usager'],
  DossierConnection: '*', DossierEdge: '*', DeletedDossierConnection: '*', DeletedDossierEdge: '*',
  DeletedDossier: '*', PageInfo: '*',
  Revision: '*', Row: '*',
  GroupeInstructeur: '*', Label: '*', Profile: '*',
  Traitement: ['dateTraitement', 'emailAgentTraitant', 'event', 'motivation', 'state'],
  Avis: ['attachments', 'claimant', 'dateQuestion', 'dateReponse', 'expert', 'id', 'question',
    'questionAnswer', 'questionLabel', 'reponse'],
  Message: ['attachments', 'body', 'createdAt', 'discardedAt', 'email', 'id'],
  File: ['byteSize', 'byteSizeBigInt', 'checksum', 'contentType', 'createdAt', 'filename', 'url',
    'virusScanResult'],
  Demandeur: '*',
  PersonnePhysique: '*',
  PersonneMorale: ['address', 'association', 'entreprise', 'id', 'libelleNaf', 'naf',
    'siegeSocial', 'siret'],
  PersonneMoraleIncomplete: '*',
  Entreprise: ['capitalSocial', 'codeEffectifEntreprise', 'dateCreation', 'effectifAnnuel',
    'effectifMensuel', 'enseigne', 'etatAdministratif', 'formeJuridique', 'formeJuridiqueCode',
    'inlineAdresse', 'nom', 'nomCommercial', 'numeroTvaIntracommunautaire', 'prenom',
    'raisonSociale', 'siren', 'siretSiegeSocial'],
  Effectif: '*', Association: '*', Address: '*', GeoJSON: '*',
  Commune: '*', Departement: '*', Epci: '*', Pays: '*', Region: '*', RNA: '*', RNF: '*',
  EngagementJuridique: '*',
  GeoArea: '*', SelectionUtilisateur: '*',
  ParcelleCadastrale: ['commune', 'description', 'geometry', 'id', 'numero', 'prefixe', 'section',
    'source', 'surface'],
  Champ: CHAMP, ChampDescriptor: DESC,
  Column: '*', TextColumn: '*', IntegerColumn: '*', DecimalColumn: '*', BooleanColumn: '*',
  DateColumn: '*', DateTimeColumn: '*', EnumColumn: '*', EnumsColumn: '*', AttachmentsColumn: '*',
  // enums and scalars: all values
  DossierState: '*', DemarcheState: '*', DeletedDossierReason: '*', Order: '*', Civilite: '*',
  LabelColorEnum: '*', TraitementEvent: '*', TypeDeChamp: '*', TitreIdentiteGrantType: '*',
  AddressType: '*', GeoAreaSource: '*', ConnectionUsager: '*', EntrepriseEtatAdministratif: '*',
  ISO8601Date: '*', ISO8601DateTime: '*', BigInt: '*', URL: '*', Coordinates: '*',
};
for (const [t, f] of Object.entries(CHAMP_TYPES)) SPEC[t] = [...CHAMP, ...f];
for (const [t, f] of Object.entries(DESCRIPTOR_TYPES)) SPEC[t] = [...DESC, ...f];

const ref = parse(fs.readFileSync(REF, 'utf8'));
const byName = new Map(ref.definitions.filter((d) => d.name).map((d) => [d.name.value, d]));
const out = [];
for (const def of ref.definitions) {
  if (!def.name || !(def.name.value in SPEC)) continue;
  const want = SPEC[def.name.value];
  let d = def;
  if (want !== '*' && def.fields) {
    const fields = def.fields.filter((f) => want.includes(f.name.value));
    const missing = want.filter((w) => !fields.some((f) => f.name.value === w));
    if (missing.length) throw new Error(`${def.name.value}: unknown fields ${missing}`);
    d = { ...def, fields };
  }
  // keep only the implemented interfaces that are part of the subset
  if (d.interfaces) d = { ...d, interfaces: d.interfaces.filter((i) => i.name.value in SPEC) };
  out.push(d);
}
for (const name of Object.keys(SPEC)) if (!byName.has(name)) throw new Error(`unknown type ${name}`);

// closure check: every named type referenced must be in the subset
const builtins = new Set(['String', 'Int', 'Float', 'Boolean', 'ID']);
const named = (t) => (t.kind === Kind.NAMED_TYPE ? t.name.value : named(t.type));
for (const d of out) {
  for (const f of d.fields || []) {
    for (const n of [named(f.type), ...(f.arguments || []).map((a) => named(a.type))]) {
      if (!builtins.has(n) && !(n in SPEC)) throw new Error(`${d.name.value}.${f.name.value} needs ${n}`);
    }
  }
  for (const m of d.types || []) if (!(m.name.value in SPEC)) throw new Error(`union member ${m.name.value}`);
}
const header = '# Subset of the Démarches Simplifiées GraphQL API schema used by ds2grist.\n' +
  '# Generated by scripts/extract-subset.js from the reference schema; do not edit by hand.\n' +
  '# Every type, field, argument and enum value here exists with the same type in the reference.\n\n';
fs.writeFileSync(OUT, header + print({ kind: Kind.DOCUMENT, definitions: out }) + '\n');
console.log(`wrote ${OUT}: ${out.length} definitions`);
