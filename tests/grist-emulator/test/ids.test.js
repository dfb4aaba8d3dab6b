'use strict';
// Identifier rules, with test vectors from grist-core's sandbox/grist/test_identifiers.py.
const test = require('node:test');
const assert = require('node:assert/strict');
const ids = require('../lib/ids');

test('table ids: capitalised, sanitised, de-duplicated case-insensitively', () => {
  assert.equal(ids.pickTableIdent('heLLO world'), 'HeLLO_world');
  assert.equal(ids.pickTableIdent('foo', ['Foo']), 'Foo2');
  assert.equal(ids.pickTableIdent('foo', ['Foo', 'Foo2']), 'Foo3');
  assert.equal(ids.pickTableIdent('FOO', ['foo', 'foo2']), 'FOO3');
  assert.equal(ids.pickTableIdent(null, ['Table']), 'Table1');
  assert.equal(ids.pickTableIdent(null, ['Table1']), 'Table2');
  assert.equal(ids.pickTableIdent('!@#', ['Table1']), 'Table2');
  assert.equal(ids.pickTableIdent('Dossiers démarche 42'), 'Dossiers_demarche_42');
  assert.equal(ids.pickTableIdent('42 dossiers'), 'T42_dossiers');
  assert.equal(ids.pickTableIdent('none'), 'TNone');
  assert.equal(ids.pickTableIdent('Foo1', ['Foo1']), 'Foo1_2');
});

test('column ids: accents folded, digits prefixed, keywords prefixed, suffixes', () => {
  assert.equal(ids.pickColIdent('Numéro de dossier'), 'Numero_de_dossier');
  assert.equal(ids.pickColIdent('état'), 'etat');
  assert.equal(ids.pickColIdent('2eme'), 'c2eme');
  assert.equal(ids.pickColIdent('_x'), 'x');
  assert.equal(ids.pickColIdent('class'), 'cclass');
  assert.equal(ids.pickColIdent('id', ['id']), 'id2');
  assert.deepEqual(ids.pickColIdentList(['foo', 'bar'], ['bar']), ['foo', 'bar2']);
  assert.deepEqual(ids.pickColIdentList(['bar', 'bar'], ['foo']), ['bar', 'bar2']);
  assert.deepEqual(ids.pickColIdentList(['bar', 'bar'], ['bar']), ['bar2', 'bar3']);
  assert.deepEqual(ids.pickColIdentList(['bAr', 'BAR'], ['bar']), ['bAr2', 'BAR3']);
  assert.equal(ids.genIdent(new Set()), 'A');
  assert.equal(ids.genIdent(new Set(['A'])), 'B');
  assert.equal(ids.pickColIdent(null, ['A', 'B']), 'C');
});
