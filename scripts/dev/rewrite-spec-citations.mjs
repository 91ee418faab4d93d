#!/usr/bin/env node
// Rewrites citations of the old out-of-repository reference spec ("spec 3.6", "spec §8.3/8.4",
// "reference spec 1.2-1.3", "spec sections 1 and 2", "../shared/docs/reference-spec.md §3 and §8",
// ...) into links to the in-repository reference notes (docs/reference.md#masking, ...), using a
// TSV map. Prints every change; with any citation the map cannot resolve it writes nothing and
// exits 1. A one-off migration tool: delete it with the map once the tree is rewritten.
//
// Usage: node scripts/dev/rewrite-spec-citations.mjs --map spec-map.tsv --root DIR [--dry-run] [--list]
//   --root DIR   the tree to rewrite (required, so that no tree is rewritten by accident): its
//                tracked and untracked, not ignored, files when DIR is a git work tree, else every
//                file under DIR
//   --dry-run    print the changes, write nothing
//   --list       print every citation found with the sections it resolves to, write nothing
//
// Map format (tab-separated, '#' starts a comment line):
//   spec 3.6 <TAB> docs/reference.md#masking <TAB> official: src/models/cav_mae.py CAVMAE.random_masking_unstructured
//   - column 1, the citation key: "spec " + a section ("3.6", "3.8b", "10", "9.1 item 7",
//     "8.3 steps 2-3"), or a compound exactly as written in the tree after normalisation
//     ("spec 3.6-3.12": lower case, "§"/"section(s)" dropped, one space, en dashes as hyphens),
//     which then wins over expanding it section by section; or "text: <phrase>" for a phrase
//     without a section number (whitespace in the phrase matches any whitespace).
//   - column 2: one or more targets "path#anchor" (space-separated), relative to the root; every
//     anchor must exist as a heading of its file (GitHub's slug rules).
//   - column 3: the official code the section summarises (information for readers of the map).
//   - column 4 (optional, "text:" rows): the replacement; "{link}" stands for the rendered targets.
//
// Rendering: in Markdown files a citation becomes relative links ([reference.md#masking](reference.md#masking));
// a citation inside a Markdown heading is removed from the heading and given as a "Reference
// notes:" line under it (so heading anchors stay clean); everywhere else (code comments, doc
// strings, string literals, JSON) it becomes the plain path "docs/reference.md#masking", several
// anchors of one file as "docs/reference.md#a, #b". Each change is labelled with where it sits
// (doc, comment, docstring, string), so changes inside string literals can be reviewed.
/* global process, console */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { extname, join, posix, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---- arguments ----------------------------------------------------------------------------------

// The comment block at the top of this file, printed by --help.
const HEADER_LINES = readFileSync(fileURLToPath(import.meta.url), 'utf8')
  .split('\n')
  .findIndex((l) => !l.startsWith('//') && !l.startsWith('#!'));

function parseArgs(argv) {
  const o = { map: undefined, root: undefined, dryRun: false, list: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--map') o.map = argv[++i];
    else if (a === '--root') o.root = argv[++i];
    else if (a === '--dry-run') o.dryRun = true;
    else if (a === '--list') o.list = true;
    else if (a === '-h' || a === '--help') {
      console.log(
        readFileSync(fileURLToPath(import.meta.url), 'utf8')
          .split('\n')
          .slice(1, HEADER_LINES)
          .join('\n'),
      );
      process.exit(0);
    } else fail(`unknown argument ${a} (see --help)`);
  }
  if (!o.map) fail('--map FILE is required');
  if (!o.root) fail('--root DIR is required (the tree to rewrite)');
  o.root = resolve(o.root);
  o.map = resolve(o.map);
  if (!existsSync(o.map)) fail(`${o.map}: no such map file`);
  if (!existsSync(o.root) || !statSync(o.root).isDirectory()) fail(`${o.root}: not a directory`);
  return o;
}

function fail(msg) {
  console.error(`rewrite-spec-citations: ${msg}`);
  process.exit(2);
}

// ---- the map ------------------------------------------------------------------------------------

/** Citation keys are compared in this form: lower case, single spaces, hyphens, no "§"/"section". */
function normaliseKey(s) {
  return s
    .replace(/[–—]/g, '-')
    .replace(/§\s*/g, '')
    .replace(/\bsections?\s+/gi, '')
    .replace(/\s*([-/,;])\s*/g, (m, p) => (p === '-' || p === '/' ? p : `${p} `))
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase();
}

function readMap(path) {
  const sections = new Map(); // 'spec 3.6' -> { targets, official, order }
  const phrases = []; // { phrase, re, targets, template }
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const cols = line.split('\t');
    const where = `${path}:${i + 1}`;
    if (cols.length < 2) fail(`${where}: expected "key<TAB>target[<TAB>official[<TAB>replacement]]"`);
    const targets = cols[1].trim().split(/\s+/).filter(Boolean);
    for (const t of targets)
      if (!/^[^#\s]+#[a-z0-9-]+$/.test(t)) fail(`${where}: target "${t}" is not path#anchor`);
    const key = cols[0].trim();
    if (key.startsWith('text:')) {
      const phrase = key.slice(5).trim();
      if (!phrase) fail(`${where}: empty phrase`);
      const re = new RegExp(phrase.split(/\s+/).map(escapeRe).join('\\s+'), 'g');
      phrases.push({ phrase, re, targets, template: cols[3] ?? '{link}', where });
    } else {
      if (!/^spec /i.test(key)) fail(`${where}: key must start with "spec " or "text:" (got "${key}")`);
      const k = normaliseKey(key);
      if (sections.has(k)) fail(`${where}: duplicate key "${k}"`);
      sections.set(k, { targets, official: cols[2]?.trim() ?? '', order: sections.size, where });
    }
  });
  return { sections, phrases };
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** GitHub's heading anchors (github-slugger): lower case, punctuation dropped, spaces to hyphens. */
function headingAnchors(markdown) {
  const seen = new Map();
  const out = new Set();
  let fence = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fence = !fence;
    if (fence) continue;
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const text = m[1].replace(/<[^>]+>/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    let slug = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    if (n > 0) slug = `${slug}-${n}`;
    out.add(slug);
  }
  for (const m of markdown.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) out.add(m[1]);
  return out;
}

function checkTargets(root, map) {
  const cache = new Map();
  const errors = [];
  const all = [...map.sections.values(), ...map.phrases];
  for (const e of all)
    for (const t of e.targets) {
      const [file, anchor] = t.split('#');
      if (!cache.has(file)) {
        const p = join(root, file);
        cache.set(file, existsSync(p) ? headingAnchors(readFileSync(p, 'utf8')) : null);
      }
      const anchors = cache.get(file);
      if (anchors === null) errors.push(`${e.where}: ${file} does not exist under ${root}`);
      else if (!anchors.has(anchor)) errors.push(`${e.where}: ${file} has no heading with anchor #${anchor}`);
    }
  return errors;
}

// ---- finding citations --------------------------------------------------------------------------

// A section: 3, 3.6, 3.8b, 9.1.20; optionally qualified: "item 7", "items 2-3", "#6", "steps 2-3".
const SEC = String.raw`\d{1,2}(?:\.\d{1,2}){0,2}[a-z]?\b`;
const QUAL = String.raw`(?:\s+items?\s+\d+(?:\s*[-–]\s*\d+)?|\s*#\d+\b|\s+steps?\s+\d+(?:\s*[-–]\s*\d+)?)`;
const ATOM = String.raw`§?\s?${SEC}${QUAL}?`;
const ITEM = String.raw`${ATOM}(?:\s*[-–]\s*§?${SEC})?`;
const LIST = String.raw`${ITEM}(?:(?:\s*(?:,|/|;)\s*(?:and\s+)?|\s+and\s+)${ITEM})*`;
const PATH = String.raw`\x60?(?:\.\.\/)?shared\/docs\/reference-spec\.md\x60?`;
const LEAD = String.raw`(?:\breference\s+spec(?:ification)?|\bspec(?:ification)?)`;
const CITATION = new RegExp(
  String.raw`(?<full>reference\s+specification\s*\(\s*${PATH}\s+(?:sections?\s+)?(?<plist>${LIST})\s*\))` +
    String.raw`|(?<path>${PATH}\s+(?:sections?\s+)?(?<qlist>${LIST}))` +
    String.raw`|(?<lead>${LEAD}\s*(?:§\s?|sections?\s+)?)(?<list>${LIST})`,
  'gi',
);
// What must not remain once the tree is rewritten.
const LEFTOVER =
  /\bspec(?:ification)?s?\s*(?:§|sections?\s+)?\s*\d|§\s?\d|reference-spec\b|\bthe spec\b|\bspec's\b/gi;

/** Splits a citation's list into items ("3.6", "3.6-3.12", "9.1 item 7") in source order. */
function splitList(list) {
  const items = [];
  const re = new RegExp(ITEM, 'gi');
  for (const m of list.matchAll(re)) items.push(m[0]);
  return items;
}

/** Resolves one citation list to its map entries; returns { entries, missing }. */
function resolveList(list, map) {
  const whole = map.sections.get(normaliseKey(`spec ${list}`));
  if (whole) return { entries: [whole], missing: [] };
  const entries = [];
  const missing = [];
  const plain = [...map.sections.entries()].filter(([k]) => /^spec \d+(\.\d+)*[a-z]?$/.test(k));
  for (const item of splitList(list)) {
    const k = normaliseKey(`spec ${item}`);
    const direct = map.sections.get(k);
    if (direct) {
      entries.push(direct);
      continue;
    }
    let m = /^spec (\d+(?:\.\d+)*[a-z]?)-(\d+(?:\.\d+)*[a-z]?)$/.exec(k);
    if (m) {
      const from = plain.findIndex(([key]) => key === `spec ${m[1]}`);
      const to = plain.findIndex(([key]) => key === `spec ${m[2]}`);
      if (from >= 0 && to >= from) {
        for (let i = from; i <= to; i++) entries.push(plain[i][1]);
        continue;
      }
    }
    // "9.1.20" and "9.2 #6" are "9.1 item 20" and "9.2 item 6".
    m = /^spec (\d+\.\d+)(?:\.| ?#)(\d+)$/.exec(k);
    if (m && map.sections.has(`spec ${m[1]} item ${m[2]}`)) {
      entries.push(map.sections.get(`spec ${m[1]} item ${m[2]}`));
      continue;
    }
    // A qualified item without its own row falls back to its section ("9.1 item 5" -> "9.1").
    m = /^(spec \d+(?:\.\d+)*[a-z]?)(?: items? .*| ?#\d+|\.\d+| steps? .*)$/.exec(k);
    if (m && map.sections.has(m[1])) {
      entries.push(map.sections.get(m[1]));
      continue;
    }
    missing.push(k);
  }
  return { entries, missing };
}

// ---- where a match sits -------------------------------------------------------------------------

// Per language: extensions, line-comment starts, [open, close, kind] blocks, one-line quotes.
const QUOTES = ['"', "'"];
const SYNTAX = [
  [
    ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs', '.cc', '.h', '.cpp'],
    ['//'],
    [
      ['/*', '*/', 'c'],
      ['`', '`', 's'],
    ],
    QUOTES,
  ],
  [
    ['.py'],
    ['#'],
    [
      ['"""', '"""', 'd'],
      ["'''", "'''", 'd'],
    ],
    QUOTES,
  ],
  [['.sh', '.bash', '.yml', '.yaml', '.toml'], ['#'], [], []],
];

/** Per character: 'c' comment, 'd' docstring, 's' string literal, ' ' code; null = not classified. */
function classify(text, ext) {
  const syntax = SYNTAX.find(([exts]) => exts.includes(ext));
  return syntax ? lex(text, { line: syntax[1], blocks: syntax[2], quotes: syntax[3] }) : null;
}

/**
 * Marks comments and strings well enough to label a change (regular expression literals and
 * string prefixes are not recognised): line comments run to the end of the line, blocks to their
 * closer, quotes to the closing quote on the same line; a backslash escapes the next character.
 */
function lex(t, { line = [], blocks = [], quotes = [] }) {
  const k = new Array(t.length).fill(' ');
  const mark = (from, to, kind) => {
    k.fill(kind, from, to);
    return to;
  };
  const closeAt = (close, from, stopAtNewline) => {
    let j = from;
    while (j < t.length && !t.startsWith(close, j) && !(stopAtNewline && t[j] === '\n'))
      j += t[j] === '\\' ? 2 : 1;
    if (j < t.length && t[j] === '\n' && !t.startsWith(close, j)) return j; // unterminated on this line
    return Math.min(j + close.length, t.length);
  };
  let i = 0;
  scan: while (i < t.length) {
    for (const open of line)
      if (t.startsWith(open, i)) {
        const eol = t.indexOf('\n', i);
        i = mark(i, eol < 0 ? t.length : eol, 'c');
        continue scan;
      }
    for (const [open, close, kind] of blocks)
      if (t.startsWith(open, i)) {
        i = mark(i, closeAt(close, i + open.length, false), kind);
        continue scan;
      }
    for (const q of quotes)
      if (t[i] === q) {
        i = mark(i, closeAt(q, i + 1, true), 's');
        continue scan;
      }
    i++;
  }
  return k;
}

const KIND = { c: 'comment', d: 'docstring', s: 'string', ' ': 'code' };

// ---- rendering ----------------------------------------------------------------------------------

function uniqueTargets(entries) {
  const out = [];
  for (const e of entries) for (const t of e.targets) if (!out.includes(t)) out.push(t);
  return out;
}

/** Plain form for code and data: "docs/reference.md#a, #b" (several files joined with "; "). */
function renderPlain(targets) {
  const byFile = new Map();
  for (const t of targets) {
    const [file, anchor] = t.split('#');
    if (!byFile.has(file)) byFile.set(file, []);
    byFile.get(file).push(anchor);
  }
  return [...byFile].map(([file, anchors]) => `${file}#${anchors.join(', #')}`).join('; ');
}

/** Markdown form: links relative to the file that holds them. */
function renderMarkdown(targets, fromFile) {
  const dir = posix.dirname(fromFile);
  let previous;
  return targets
    .map((t) => {
      const [file, anchor] = t.split('#');
      let rel = posix.relative(dir, file);
      if (rel === '') rel = posix.basename(file);
      const text = rel === previous ? `#${anchor}` : `${rel}#${anchor}`;
      previous = rel;
      return `[${text}](${rel}#${anchor})`;
    })
    .join(', ');
}

// ---- rewriting one file -------------------------------------------------------------------------

function rewriteFile(relPath, text, map) {
  const ext = extname(relPath).toLowerCase();
  const markdown = ext === '.md';
  const kinds = classify(text, ext);
  const changes = [];
  const missing = [];
  const where = (index) => {
    const line = text.slice(0, index).split('\n').length;
    const kind = markdown ? 'doc' : kinds ? KIND[kinds[index]] : ext === '.json' ? 'data' : 'text';
    return { line, kind };
  };
  const render = (targets) => (markdown ? renderMarkdown(targets, relPath) : renderPlain(targets));

  // Collect every replacement as [start, end, newText, info] on the original text.
  const edits = [];
  for (const p of map.phrases) {
    for (const m of text.matchAll(p.re)) {
      const replacement = p.template.replace('{link}', render(p.targets));
      edits.push({
        start: m.index,
        end: m.index + m[0].length,
        text: replacement,
        old: m[0],
        targets: p.targets,
      });
    }
  }
  const taken = (s, e) => edits.some((x) => s < x.end && e > x.start);
  for (const m of text.matchAll(CITATION)) {
    const start = m.index;
    const end = start + m[0].length;
    if (taken(start, end)) continue;
    const list = m.groups.plist ?? m.groups.qlist ?? m.groups.list;
    const { entries, missing: miss } = resolveList(list, map);
    if (miss.length) {
      missing.push({ ...where(start), citation: m[0].replace(/\s+/g, ' '), unknown: miss });
      continue;
    }
    const targets = uniqueTargets(entries);
    const link = render(targets);
    const replacement = m.groups.full ? `reference notes (${link})` : link;
    edits.push({ start, end, text: replacement, old: m[0], targets, entries, list });
  }
  edits.sort((a, b) => a.start - b.start);

  // Markdown headings: take the citation out of the heading and put it under the heading.
  // Notes are queued per heading line in source order and consumed in the same order below.
  const headingNotes = [];
  if (markdown) {
    let lastHeading = -1;
    for (const e of edits) {
      const lineStart = text.lastIndexOf('\n', e.start - 1) + 1;
      let lineEnd = text.indexOf('\n', e.start);
      if (lineEnd < 0) lineEnd = text.length;
      if (!/^#{1,6}\s/.test(text.slice(lineStart, lineEnd))) continue;
      e.heading = true;
      if (lineStart !== lastHeading) headingNotes.push([]);
      lastHeading = lineStart;
      headingNotes.at(-1).push(e.text);
      e.text = '\uE000';
    }
  }

  // A citation that spans a line break keeps the break: it moves in front of the replacement.
  for (const e of edits) {
    const brk = /\n[ \t]*(?:(?:\*|\/\/|#)[ \t]*)?/.exec(e.old);
    if (!brk || e.heading) continue;
    e.text = brk[0] + e.text;
    e.trimBefore = true;
  }

  let out = '';
  let pos = 0;
  for (const e of edits) {
    const before = text.slice(pos, e.start);
    out += (e.trimBefore ? before.replace(/[ \t]+$/, '') : before) + e.text;
    pos = e.end;
    const w = where(e.start);
    changes.push({
      ...w,
      old: e.old.replace(/\s+/g, ' '),
      new: e.heading ? '(moved under the heading)' : e.text.replace(/\s+/g, ' '),
    });
  }
  out += text.slice(pos);

  if (headingNotes.length) {
    const lines = out.split('\n');
    const fixed = [];
    for (let i = 0; i < lines.length; i++) {
      let line = lines[i];
      if (!line.includes('\uE000')) {
        fixed.push(line);
        continue;
      }
      // "(X)" alone, ", X" inside parentheses, "X; " / "X, " before other text.
      line = line
        .replace(/\s*\(\s*(?:\uE000\s*(?:,|;|and)?\s*)+\)/g, '')
        .replace(/\s*(?:,|;|and)\s*\uE000/g, '')
        .replace(/\uE000\s*(?:,|;)\s*/g, '')
        .replace(/\s*\uE000/g, '')
        .replace(/\(\s*\)/g, '')
        .replace(/\s+$/, '');
      fixed.push(line);
      const notes = headingNotes.shift();
      fixed.push('', `Reference notes: ${notes.join(', ')}.`);
      if (i + 1 < lines.length && lines[i + 1].trim() !== '') fixed.push('');
    }
    out = fixed.join('\n');
  }
  out = keepRulerWidths(text, out);
  if (!markdown) {
    // Line numbers are unchanged outside Markdown (a moved line break stays one line break).
    const oldLines = text.split('\n');
    const newLines = out.split('\n');
    for (const c of changes) {
      const n = newLines[c.line - 1]?.length ?? 0;
      if (n > 110 && (oldLines[c.line - 1]?.length ?? 0) <= 110) c.long = n;
    }
  }
  return { out, changes, missing };
}

/** A comment ruler ("# ---- title ------") that grew gives back the growth from its dashes. */
function keepRulerWidths(before, after) {
  const widths = new Map();
  for (const line of before.split('\n')) {
    const m = /^(.*?\S)\s*([-=]{5,})$/.exec(line);
    if (m) widths.set(m[1].replace(/\([^)]*\)/g, '()').slice(0, 20), line.length);
  }
  return after
    .split('\n')
    .map((line) => {
      const m = /^(.*?\S)(\s*)([-=]{5,})$/.exec(line);
      if (!m) return line;
      const width = widths.get(m[1].replace(/\([^)]*\)/g, '()').slice(0, 20));
      if (width === undefined || line.length <= width) return line;
      const keep = Math.max(4, m[3].length - (line.length - width));
      return m[1] + m[2] + m[3].slice(0, keep);
    })
    .join('\n');
}

// ---- the tree -----------------------------------------------------------------------------------

const TEXT_EXT = new Set([
  '.ts',
  '.mts',
  '.cts',
  '.js',
  '.mjs',
  '.cjs',
  '.py',
  '.md',
  '.json',
  '.sh',
  '.txt',
  '.cc',
  '.h',
  '.cpp',
  '.yml',
  '.yaml',
  '.toml',
  '.html',
  '.css',
]);
const SKIP_DIRS = new Set(['.git', 'node_modules', 'dist', 'build', '.cache']);

function listFiles(root) {
  let files;
  if (existsSync(join(root, '.git'))) {
    files = execFileSync(
      'git',
      ['-C', root, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
      { encoding: 'utf8', maxBuffer: 1 << 28 },
    )
      .split('\0')
      .filter(Boolean);
  } else {
    files = [];
    const walk = (dir) => {
      for (const name of readdirSync(join(root, dir))) {
        const rel = dir ? `${dir}/${name}` : name;
        const st = statSync(join(root, rel));
        if (st.isDirectory()) {
          if (!SKIP_DIRS.has(name)) walk(rel);
        } else files.push(rel);
      }
    };
    walk('');
  }
  return files.filter(
    (f) => TEXT_EXT.has(extname(f).toLowerCase()) || /(^|\/)(README|DEVELOPERS)[^/]*$/.test(f),
  );
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const map = readMap(o.map);
  const targetErrors = checkTargets(o.root, map);
  if (targetErrors.length) {
    for (const e of targetErrors) console.error(e);
    console.error(
      `rewrite-spec-citations: ${targetErrors.length} map target(s) do not resolve; nothing written`,
    );
    process.exit(1);
  }
  const self = relative(o.root, fileURLToPath(import.meta.url))
    .split(sep)
    .join('/');
  const mapRel = relative(o.root, o.map).split(sep).join('/');
  const targetFiles = new Set(
    [...map.sections.values(), ...map.phrases].flatMap((e) => e.targets.map((t) => t.split('#')[0])),
  );

  const results = [];
  const allMissing = [];
  const leftovers = [];
  for (const rel of listFiles(o.root)) {
    if (
      rel === self ||
      posix.basename(rel) === posix.basename(self) ||
      rel === mapRel ||
      targetFiles.has(rel)
    )
      continue;
    const abs = join(o.root, rel);
    if (!existsSync(abs)) continue;
    const buf = readFileSync(abs);
    if (buf.includes(0)) continue; // binary
    const text = buf.toString('utf8');
    if (!LEFTOVER.test(text)) {
      LEFTOVER.lastIndex = 0;
      continue;
    }
    LEFTOVER.lastIndex = 0;
    const r = rewriteFile(rel, text, map);
    for (const m of r.missing) allMissing.push({ file: rel, ...m });
    for (const m of r.out.matchAll(LEFTOVER)) {
      const line = r.out.slice(0, m.index).split('\n').length;
      const src = r.out.split('\n')[line - 1].trim();
      if (!r.missing.some((x) => x.line === line)) leftovers.push({ file: rel, line, text: src });
    }
    if (r.changes.length) results.push({ rel, abs, ...r });
  }

  if (o.list) {
    for (const r of results)
      for (const c of r.changes) console.log(`${r.rel}:${c.line}\t${c.kind}\t${c.old}\t${c.new}`);
  } else {
    for (const r of results) {
      console.log(`${r.rel}`);
      for (const c of r.changes)
        console.log(
          `  ${c.line} [${c.kind}] ${c.old}  ->  ${c.new}${c.long ? `  [line now ${c.long} chars]` : ''}`,
        );
    }
  }
  const count = results.reduce((n, r) => n + r.changes.length, 0);
  const byKind = {};
  for (const r of results) for (const c of r.changes) byKind[c.kind] = (byKind[c.kind] ?? 0) + 1;
  const kinds = Object.entries(byKind)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  console.log(`\n${count} citation(s) in ${results.length} file(s)${count ? ` (${kinds})` : ''}`);
  const long = new Set(
    results.flatMap((r) => r.changes.filter((c) => c.long).map((c) => `${r.rel}:${c.line}`)),
  );
  if (long.size && !o.list)
    console.log(
      `${long.size} line(s) outside Markdown grew past 110 characters (marked above; rewrap by hand if wanted)`,
    );

  let bad = false;
  if (allMissing.length) {
    bad = true;
    console.error(`\n${allMissing.length} citation(s) without a mapping:`);
    for (const m of allMissing)
      console.error(`  ${m.file}:${m.line} [${m.kind}] "${m.citation}": no row for ${m.unknown.join(', ')}`);
  }
  if (leftovers.length) {
    bad = true;
    console.error(`\n${leftovers.length} reference to the old spec that this tool does not recognise:`);
    for (const l of leftovers) console.error(`  ${l.file}:${l.line}: ${l.text}`);
  }
  if (bad) {
    console.error('\nrewrite-spec-citations: nothing written; add rows to the map or edit these by hand');
    process.exit(1);
  }
  if (o.dryRun || o.list) return;
  for (const r of results) {
    const tmp = `${r.abs}.rewrite-${process.pid}.tmp`;
    writeFileSync(tmp, r.out);
    renameSync(tmp, r.abs);
  }
  console.log(`rewrote ${results.length} file(s)`);
}

main();
