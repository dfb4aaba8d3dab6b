#!/usr/bin/env node
// validate-queries.js - every GraphQL document the producer sends validates against the
// real DS schema (../shared/reference/ds-schema.graphql), with graphql-js, the reference
// implementation. Usage: node validate-queries.js SCHEMA QUERY.graphql...
// Exits non-zero, naming the document and the error, if one does not validate.
'use strict';
const fs = require('fs');
const path = require('path');
const { buildSchema, parse, validate } = require(require.resolve('graphql', {
  paths: [path.join(__dirname, '..', 'ds-emulator')],
}));

const [schemaPath, ...docs] = process.argv.slice(2);
if (!schemaPath || docs.length === 0) {
  console.error('usage: validate-queries.js SCHEMA QUERY.graphql...');
  process.exit(2);
}
const schema = buildSchema(fs.readFileSync(schemaPath, 'utf8'));
let failed = 0, passed = 0;
for (const file of docs) {
  let errors;
  try {
    errors = validate(schema, parse(fs.readFileSync(file, 'utf8')));
  } catch (e) {
    errors = [e];
  }
  if (errors.length) {
    failed++;
    for (const e of errors) console.log(`not ok ${path.basename(file)}: ${e.message}`);
  } else {
    passed++;
    console.log(`ok ${path.basename(file)}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
