'use strict';
// The emulator's schema.graphql must be a strict subset of the real DS schema:
// same kinds, same field types (nullability and list wrapping), same argument
// types, existing enum values and union members, and the same interfaces.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const {
  buildSchema, isObjectType, isInterfaceType, isUnionType, isEnumType, isScalarType,
  isInputObjectType, getNamedType,
} = require('graphql');

const REF = process.env.DS_REFERENCE_SCHEMA || path.join(__dirname, '..', '..', '..', '..', 'shared', 'reference', 'ds-schema.graphql');
const SUBSET = path.join(__dirname, '..', 'schema.graphql');

function kindOf(t) {
  if (isObjectType(t)) return 'OBJECT';
  if (isInterfaceType(t)) return 'INTERFACE';
  if (isUnionType(t)) return 'UNION';
  if (isEnumType(t)) return 'ENUM';
  if (isScalarType(t)) return 'SCALAR';
  if (isInputObjectType(t)) return 'INPUT_OBJECT';
  return 'UNKNOWN';
}

/** Returns the list of differences between subset and reference (empty = OK). */
function compareSchemas(subset, reference) {
  const problems = [];
  for (const [name, type] of Object.entries(subset.getTypeMap())) {
    if (name.startsWith('__')) continue;
    const ref = reference.getType(name);
    if (!ref) { problems.push(`type ${name} does not exist in the reference`); continue; }
    if (kindOf(ref) !== kindOf(type)) {
      problems.push(`type ${name} is ${kindOf(type)} but ${kindOf(ref)} in the reference`);
      continue;
    }
    if (isObjectType(type) || isInterfaceType(type) || isInputObjectType(type)) {
      const refFields = ref.getFields();
      for (const [fname, field] of Object.entries(type.getFields())) {
        const rf = refFields[fname];
        if (!rf) { problems.push(`${name}.${fname} does not exist in the reference`); continue; }
        if (String(rf.type) !== String(field.type)) {
          problems.push(`${name}.${fname} is ${field.type} but ${rf.type} in the reference`);
        }
        for (const arg of field.args || []) {
          const ra = (rf.args || []).find((a) => a.name === arg.name);
          if (!ra) { problems.push(`${name}.${fname}(${arg.name}) does not exist in the reference`); continue; }
          if (String(ra.type) !== String(arg.type)) {
            problems.push(`${name}.${fname}(${arg.name}) is ${arg.type} but ${ra.type} in the reference`);
          }
        }
      }
    }
    if (isObjectType(type) || isInterfaceType(type)) {
      const refIfaces = ref.getInterfaces().map((i) => i.name);
      for (const i of type.getInterfaces()) {
        if (!refIfaces.includes(i.name)) problems.push(`${name} implements ${i.name}, not in the reference`);
      }
    }
    if (isEnumType(type)) {
      const refValues = ref.getValues().map((v) => v.name);
      for (const v of type.getValues()) {
        if (!refValues.includes(v.name)) problems.push(`enum ${name}.${v.name} does not exist in the reference`);
      }
    }
    if (isUnionType(type)) {
      const refMembers = ref.getTypes().map((m) => m.name);
      for (const m of type.getTypes()) {
        if (!refMembers.includes(m.name)) problems.push(`union ${name} member ${m.name} not in the reference`);
      }
    }
  }
  return problems;
}

const load = (p) => buildSchema(fs.readFileSync(p, 'utf8'));

test('schema.graphql is a strict subset of the reference DS schema', () => {
  const problems = compareSchemas(load(SUBSET), load(REF));
  assert.deepStrictEqual(problems, []);
});

test('the subset covers the types the emulator needs', () => {
  const s = load(SUBSET);
  for (const t of ['Demarche', 'Dossier', 'DeletedDossier', 'Revision', 'RepetitionChamp',
    'PieceJustificativeChamp', 'PersonneMoraleIncomplete', 'RepetitionChampDescriptor']) {
    assert.ok(s.getType(t), `${t} missing`);
  }
  // every object type implementing Champ in the subset has a name ending in Champ
  const champs = Object.values(s.getTypeMap()).filter((t) => isObjectType(t)
    && t.getInterfaces().some((i) => i.name === 'Champ'));
  assert.ok(champs.length >= 28, `only ${champs.length} champ kinds`);
  assert.strictEqual(getNamedType(s.getType('Query').getFields().demarche.type).name, 'Demarche');
});

test('the checker detects a changed type (self-test)', () => {
  const ref = load(REF);
  const sdl = fs.readFileSync(SUBSET, 'utf8');
  const broken = [
    sdl.replace(/(\n\s+number: )Int!/, '$1Int'), // nullability change
    sdl.replace(/(\n\s+labels: )\[Label!\]!/, '$1[Label]!'), // list wrapping change
    sdl.replace(/\n\s+en_construction\n/, '\n  en_construction\n  brouillon\n'), // fake enum value
    sdl + '\nextend type Dossier { notAField: String }\n',
  ];
  for (const b of broken) {
    assert.notStrictEqual(b, sdl);
    assert.ok(compareSchemas(buildSchema(b), ref).length > 0, 'change not detected');
  }
});

module.exports = { compareSchemas };
