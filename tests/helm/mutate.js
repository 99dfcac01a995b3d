#!/usr/bin/env node
// Applies one mutation of mutations.json to a copy of the chart, so that a test can show that the
// check guarding a property really fails when the chart breaks it.
//
//   node mutate.js MUTATIONS.json NAME CHART_COPY_DIR
//
// Replaces every occurrence of the mutation's `text` in CHART_COPY_DIR/`file` with `replacement`
// (the text must occur: a stale mutation is an error; "*" replaces the whole file; `edits`, a list of
// {text, replacement}, applies several in order), then prints the expected failure message
// on the first line and the helm_test.sh case to run, one argument per line.
'use strict';
const fs = require('fs');
const path = require('path');

const [table, name, dir] = process.argv.slice(2);
const m = JSON.parse(fs.readFileSync(table, 'utf8')).find((x) => x.name === name);
if (!m) {
  console.error(`mutate.js: no mutation named ${name}`);
  process.exit(2);
}
const file = path.join(dir, m.file);
const before = fs.readFileSync(file, 'utf8');
if (m.edits) {
  // Several replacements in the one file, in order (e.g. moving a block).
  let text = before;
  for (const e of m.edits) {
    if (!text.includes(e.text)) {
      console.error(`mutate.js: ${m.file} no longer contains the text mutation ${name} replaces:\n${e.text}`);
      process.exit(2);
    }
    text = text.split(e.text).join(e.replacement);
  }
  fs.writeFileSync(file, text);
} else if (m.text === '*') {
  // The whole file (for files the chart takes from elsewhere, e.g. deploy/prometheus).
  fs.writeFileSync(file, m.replacement);
} else if (!before.includes(m.text)) {
  console.error(`mutate.js: ${m.file} no longer contains the text mutation ${name} replaces:\n${m.text}`);
  process.exit(2);
} else {
  fs.writeFileSync(file, before.split(m.text).join(m.replacement));
}
console.log(m.expect);
for (const arg of m.run) console.log(arg);
