#!/usr/bin/env node
// The native addon's install step, shared by `npm install cavmae` (package.json "install"), a git
// clone's `npm ci` / scripts/setup.sh, and `npm pack` (the prebuilt binary shipped in the package).
// Plain Node, no dependencies: it runs before anything is compiled.
//
//   node scripts/native.mjs install    use the shipped prebuilt addon if it loads here, else build
//                                      from source with node-gyp against the installed Node headers;
//                                      never fails the install (prints one message naming the
//                                      Debian packages to install instead)
//   node scripts/native.mjs build      (npm run build:native) build from source; fails on error
//   node scripts/native.mjs prebuild   (prepack) build if stale, copy the addon to prebuilds/
//   node scripts/native.mjs clean      (postpack) remove prebuilds/
//   node scripts/native.mjs status     print what the last install step found
//
// Layout (node-gyp-build / prebuildify conventions): a source build is
// native/build/Release/cavmae_native.node; the prebuilt is
// prebuilds/linux-x64/cavmae_native.napi.glibc.node (N-API 8, any Node >= 20 on glibc x86-64 with
// AVX2 + FMA, needs oneDNN 2.x at run time: Debian 12's libdnnl2). src/kernels/native.ts loads
// the first of the two that works and reads native/install-status.json to explain a fallback.
// Nothing is downloaded: without local Node headers the build is not attempted.
//
// Environment: CAVMAE_BUILD_FROM_SOURCE=1 or npm's --build-from-source (npm_config_build_from_source)
// skip the prebuilt; CAVMAE_SKIP_NATIVE=1 skips the step; CXX picks the compiler.
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
export const NATIVE_DIR = join(ROOT, 'native');
export const BUILD_ADDON = join(NATIVE_DIR, 'build', 'Release', 'cavmae_native.node');
export const PREBUILT_DIR = join(ROOT, 'prebuilds', 'linux-x64');
export const PREBUILT_ADDON = join(PREBUILT_DIR, 'cavmae_native.napi.glibc.node');
export const STATUS_FILE = join(NATIVE_DIR, 'install-status.json');
export const BUILD_LOG = join(NATIVE_DIR, 'build.log');

/** Debian package per missing prerequisite (Debian 12 names; Ubuntu uses the same). */
const PACKAGES = {
  compiler: 'build-essential',
  make: 'build-essential',
  python: 'python3',
  onednn: 'libdnnl-dev',
  headers: 'libnode-dev',
};

const log = (line) => process.stdout.write(`cavmae: ${line}\n`);

/** The one message a person must see. npm hides the output of a dependency's install script unless
 * it fails, so when stderr is not a terminal the message also goes to the controlling terminal. */
function tell(lines) {
  const text = lines.map((l) => `cavmae: ${l}\n`).join('');
  process.stderr.write(text);
  if (process.stderr.isTTY) return;
  try {
    const fd = openSync('/dev/tty', 'w');
    writeSync(fd, text);
    closeSync(fd);
  } catch {
    // no terminal (CI): the run-time notice repeats the reason
  }
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  return { ok: r.status === 0 && !r.error, status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

/** Why the native addon cannot run on this platform at all, or undefined. */
export function platformProblem() {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return `the native kernels are built for Linux on x86-64 only (this is ${process.platform}-${process.arch})`;
  try {
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1].split(/\s+/) ?? [];
    const missing = ['avx2', 'fma'].filter((f) => !flags.includes(f));
    if (missing.length) return `this CPU lacks ${missing.join(' and ').toUpperCase()}, which the native kernels need (x86-64-v3)`;
  } catch {
    // no /proc: let the load decide
  }
  return undefined;
}

/** Loads an addon in a child process (a crash there cannot take the install down); returns its info(). */
export function testLoad(path) {
  const script =
    `const a = require(${JSON.stringify(path)});` +
    `if (typeof a.info !== 'function' || typeof a.matmul !== 'function') throw new Error('not the cavmae addon (info/matmul missing)');` +
    `process.stdout.write(JSON.stringify(a.info()));`;
  const r = run(process.execPath, ['-e', script], { timeout: 60_000 });
  if (r.ok) {
    try {
      return { ok: true, info: JSON.parse(r.out) };
    } catch {
      return { ok: true, info: {} };
    }
  }
  const reason = /Error: (.*)/.exec(r.out)?.[1] ?? (r.error ? String(r.error.message) : `exit ${r.status}`);
  return { ok: false, reason: reason.trim() };
}

/** Native sources and build configuration: what a build depends on. */
function sourceFiles() {
  return readdirSync(NATIVE_DIR)
    .filter((f) => /\.(cc|h|gyp)$/.test(f))
    .map((f) => join(NATIVE_DIR, f));
}

/** A source build newer than every source file. */
export function buildIsCurrent() {
  if (!existsSync(BUILD_ADDON)) return false;
  const built = statSync(BUILD_ADDON).mtimeMs;
  return sourceFiles().every((f) => statSync(f).mtimeMs <= built);
}

/** The Node headers to build against (never downloaded): --nodedir, or node-gyp's own cache. */
export function nodeHeaders() {
  const hasHeaders = (dir) => existsSync(join(dir, 'include', 'node', 'node_api.h')) && existsSync(join(dir, 'include', 'node', 'common.gypi'));
  const candidates = [process.env.npm_config_nodedir, dirname(dirname(process.execPath)), '/usr', '/usr/local'].filter(Boolean);
  for (const dir of candidates) if (hasHeaders(dir)) return { args: [`--nodedir=${dir}`], where: dir };
  const cache = [process.env.npm_config_devdir, join(homedir(), '.cache', 'node-gyp')].filter(Boolean);
  for (const dir of cache) if (hasHeaders(join(dir, process.versions.node))) return { args: [`--devdir=${dir}`], where: join(dir, process.versions.node) };
  return undefined;
}

/** How to run node-gyp: npm's own copy (npm sets npm_config_node_gyp for scripts), ours, or PATH. */
function nodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp))
    return [process.execPath, process.env.npm_config_node_gyp];
  try {
    return [process.execPath, createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    return run('node-gyp', ['--version']).ok ? ['node-gyp'] : undefined;
  }
}

/** Everything a source build needs; each problem names its Debian package. */
export function checkPrerequisites() {
  const problems = [];
  const cxx = process.env.CXX || 'g++';
  const hasCompiler = run(cxx, ['--version']).ok;
  if (!hasCompiler) problems.push({ what: `no C++ compiler (${cxx})`, pkg: PACKAGES.compiler });
  if (!run('make', ['--version']).ok) problems.push({ what: 'no make', pkg: PACKAGES.make });
  const python = process.env.npm_config_python || process.env.PYTHON || 'python3';
  if (!run(python, ['--version']).ok) problems.push({ what: `no Python 3 (${python}) for node-gyp`, pkg: PACKAGES.python });
  const headers = nodeHeaders();
  if (!headers)
    problems.push({
      what: `no Node.js headers (include/node/node_api.h) next to ${process.execPath} or in /usr, /usr/local`,
      pkg: PACKAGES.headers,
    });
  if (hasCompiler) {
    const oneDnn = probeOneDnn(cxx);
    if (oneDnn) problems.push({ what: `oneDNN is missing or unusable (${oneDnn})`, pkg: PACKAGES.onednn });
  } else {
    problems.push({ what: 'oneDNN not checked (no compiler)', pkg: PACKAGES.onednn });
  }
  const gyp = nodeGyp();
  if (!gyp) problems.push({ what: 'node-gyp not found (npm normally provides it)', pkg: undefined });
  return { problems, headers, gyp };
}

/** Compiles and links a two-line program against oneDNN; returns the first error line or undefined. */
function probeOneDnn(cxx) {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-dnnl-'));
  try {
    const src = join(dir, 'probe.cc');
    writeFileSync(src, '#include <oneapi/dnnl/dnnl.hpp>\nint main() { return dnnl::version()->major > 0 ? 0 : 1; }\n');
    const r = run(cxx, ['-std=c++17', src, '-o', join(dir, 'probe'), '-ldnnl'], { timeout: 120_000 });
    if (r.ok) return undefined;
    const key = /(fatal error: .*|cannot find .*|undefined reference to .*|file not recognized.*|file format not recognized.*)/.exec(r.out);
    const line = key?.[1] ?? r.out.split('\n').find((l) => /error/i.test(l)) ?? r.out.split('\n')[0];
    return `${key ? 'compiling and linking a test program with -ldnnl: ' : ''}${line.replaceAll(dir + '/', '').trim()}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** node-gyp rebuild of native/ into native/build (log in native/build.log). */
export function buildFromSource(pre = checkPrerequisites()) {
  const [cmd, ...gypArgs] = pre.gyp;
  const args = [...gypArgs, 'rebuild', '--directory', NATIVE_DIR, '--jobs=max', ...pre.headers.args];
  const r = run(cmd, args, { cwd: NATIVE_DIR, maxBuffer: 64 << 20 });
  writeFileSync(BUILD_LOG, `$ ${[cmd, ...args].join(' ')}\n${r.out}`);
  if (!r.ok) {
    const errors = r.out.split('\n').filter((l) => /error[: ]/i.test(l) && !/^gyp (ERR|info)/.test(l));
    return { ok: false, reason: `node-gyp failed${errors.length ? `: ${errors[0].trim()}` : ''}` };
  }
  return { ok: true };
}

function writeStatus(status) {
  const tmp = `${STATUS_FILE}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ ...status, node: process.version, time: new Date().toISOString() }, null, 2) + '\n');
  renameSync(tmp, STATUS_FILE);
}

function describe(info) {
  return info?.isa ? ` (${info.isa} kernels, oneDNN ${info.dnnlVersion})` : '';
}

function fallbackLines(reason, packages) {
  const lines = [`the fast native kernels are not installed: ${reason}.`];
  if (packages.length) {
    lines.push(`to get them, install the Debian packages and rebuild:`);
    lines.push(`    sudo apt-get install -y ${packages.join(' ')}`);
    lines.push(`    npm rebuild cavmae`);
  }
  lines.push('until then cavmae runs on its TypeScript kernels (correct, but tens of times slower).');
  return lines;
}

/** The install step. Never throws and never fails the install. */
export function install() {
  if (process.env.CAVMAE_SKIP_NATIVE === '1') {
    log('CAVMAE_SKIP_NATIVE=1: native addon step skipped');
    return { ok: false, how: 'skipped' };
  }
  const platform = platformProblem();
  if (platform) {
    writeStatus({ ok: false, how: 'none', reason: platform, packages: [] });
    tell(fallbackLines(platform, []));
    return { ok: false, how: 'none' };
  }
  const fromSource = process.env.CAVMAE_BUILD_FROM_SOURCE === '1' || process.env.npm_config_build_from_source === 'true';
  const tried = [];
  if (!fromSource && buildIsCurrent()) {
    const t = testLoad(BUILD_ADDON);
    if (t.ok) {
      writeStatus({ ok: true, how: 'built', addon: relative(ROOT, BUILD_ADDON), info: t.info });
      log(`native addon up to date: ${relative(ROOT, BUILD_ADDON)}${describe(t.info)}`);
      return { ok: true, how: 'built' };
    }
    tried.push(`the existing build does not load (${t.reason})`);
  }
  if (!fromSource && existsSync(PREBUILT_ADDON)) {
    const t = testLoad(PREBUILT_ADDON);
    if (t.ok) {
      writeStatus({ ok: true, how: 'prebuilt', addon: relative(ROOT, PREBUILT_ADDON), info: t.info });
      log(`using the prebuilt linux-x64 native addon${describe(t.info)}`);
      return { ok: true, how: 'prebuilt' };
    }
    tried.push(`the prebuilt addon does not load here (${t.reason})`);
  }
  const pre = checkPrerequisites();
  if (pre.problems.length) {
    const packages = [...new Set(pre.problems.map((p) => p.pkg).filter(Boolean))];
    const reason = [...tried, ...pre.problems.map((p) => p.what)].join('; ');
    writeStatus({ ok: false, how: 'none', reason, packages });
    tell(fallbackLines(reason, packages));
    return { ok: false, how: 'none', packages };
  }
  log(`building the native addon from source (node-gyp, Node headers in ${pre.headers.where}) ...`);
  const t0 = Date.now();
  const b = buildFromSource(pre);
  const t = b.ok ? testLoad(BUILD_ADDON) : b;
  if (!t.ok) {
    const reason = [...tried, `${t.reason} (log: ${BUILD_LOG})`].join('; ');
    writeStatus({ ok: false, how: 'none', reason, packages: [] });
    tell(fallbackLines(reason, []));
    return { ok: false, how: 'none' };
  }
  writeStatus({ ok: true, how: 'built', addon: relative(ROOT, BUILD_ADDON), info: t.info });
  log(`native addon built in ${((Date.now() - t0) / 1000).toFixed(0)} s${describe(t.info)}`);
  return { ok: true, how: 'built' };
}

/** prepack: the addon shipped in the package, built from the current sources. */
export function prebuild() {
  if (!buildIsCurrent()) {
    const pre = checkPrerequisites();
    if (pre.problems.length) throw new Error(`cannot build the prebuilt addon: ${pre.problems.map((p) => p.what).join('; ')}`);
    log('prebuild: native sources changed since the last build; rebuilding');
    const b = buildFromSource(pre);
    if (!b.ok) throw new Error(`cannot build the prebuilt addon: ${b.reason} (log: ${BUILD_LOG})`);
  }
  const t = testLoad(BUILD_ADDON);
  if (!t.ok) throw new Error(`the addon at ${BUILD_ADDON} does not load: ${t.reason}`);
  mkdirSync(PREBUILT_DIR, { recursive: true });
  const tmp = `${PREBUILT_ADDON}.tmp`;
  // Stripped copy: the symbol tables are not needed to run and are most of the file.
  if (!run('strip', ['--strip-unneeded', '-o', tmp, BUILD_ADDON]).ok) copyFileSync(BUILD_ADDON, tmp);
  renameSync(tmp, PREBUILT_ADDON);
  log(`prebuild: ${relative(ROOT, PREBUILT_ADDON)} (${(statSync(PREBUILT_ADDON).size / 1024).toFixed(0)} kB)${describe(t.info)}`);
}

function main(cmd) {
  switch (cmd) {
    case 'install':
      try {
        install();
      } catch (e) {
        // A bug here must not break `npm install`: the TypeScript kernels still work.
        tell(fallbackLines(`the native install step failed unexpectedly (${e?.message ?? e})`, []));
      }
      return 0;
    case 'build': {
      // npm run build:native: always from source, and a failure is an error.
      const pre = checkPrerequisites();
      if (pre.problems.length) {
        const packages = [...new Set(pre.problems.map((p) => p.pkg).filter(Boolean))];
        process.stderr.write(`cavmae: cannot build: ${pre.problems.map((p) => p.what).join('; ')}\n`);
        if (packages.length) process.stderr.write(`cavmae: install: sudo apt-get install -y ${packages.join(' ')}\n`);
        return 1;
      }
      const b = buildFromSource(pre);
      const t = b.ok ? testLoad(BUILD_ADDON) : b;
      if (!t.ok) {
        process.stderr.write(`cavmae: ${t.reason} (log: ${BUILD_LOG})\n`);
        return 1;
      }
      writeStatus({ ok: true, how: 'built', addon: relative(ROOT, BUILD_ADDON), info: t.info });
      log(`native addon built: ${relative(ROOT, BUILD_ADDON)}${describe(t.info)}`);
      return 0;
    }
    case 'prebuild':
      prebuild();
      return 0;
    case 'clean':
      rmSync(join(ROOT, 'prebuilds'), { recursive: true, force: true });
      return 0;
    case 'status':
      process.stdout.write(existsSync(STATUS_FILE) ? readFileSync(STATUS_FILE, 'utf8') : 'no install status yet\n');
      return 0;
    default:
      process.stderr.write('usage: node scripts/native.mjs install|build|prebuild|clean|status\n');
      return 2;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv[2]);
