/**
 * The npm package as a user gets it (issue 17): `npm pack`, then `npm install <tarball>` into a new
 * project in a temporary folder outside the repository, and from there: `npx cavmae --version`,
 * embeddings through `import { CavMae } from 'cavmae'` on the native kernels (the prebuilt binary,
 * then a build from source), `require('cavmae')`, the types; and the same install with oneDNN's
 * library hidden (a private mount namespace binds /dev/null over libdnnl): the install succeeds,
 * says which Debian package to install, and the API answers on the TypeScript kernels.
 *
 * Not in the default `npm test` (it packs and installs the whole package, ~1-2 min):
 * `npm run test:package`, which .ci/run runs after the suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CavMae } from '../../src/index.js';
import { assertClose, fixture, repoRoot } from '../helpers.js';

const ROOT = repoRoot();
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const MODEL = fixture('model_small', 'cavmae_small.safetensors');
const AUDIO = fixture('audio', '00W1lcxW-WU_40.000.wav');
const IMAGE = fixture('image', 'frames', '00W1lcxW-WU_40.000', 'frame_5.jpg');

/** The environment of a user's shell: none of the npm_* variables of the `npm run` we are in. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^npm_/i.test(k) && !k.startsWith('CAVMAE_')) env[k] = v;
  return { ...env, ...extra };
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

function run(cmd: string, args: string[], cwd: string, env = userEnv(), timeoutMs = 600_000): Run {
  const t0 = Date.now();
  const r: SpawnSyncReturns<string> = spawnSync(cmd, args, {
    cwd,
    env,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
  });
  return {
    status: r.status,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    seconds: (Date.now() - t0) / 1000,
  };
}

function ok(r: Run, what: string): Run {
  assert.equal(r.status, 0, `${what} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** The real file behind libdnnl.so.2 (what the addon and the linker open), or undefined. */
function oneDnnLibrary(): string | undefined {
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  const path = /libdnnl\.so\.\d+ \(.*\) => (\S+)/.exec(r.stdout ?? '')?.[1];
  return path && existsSync(path) ? realpathSync(path) : undefined;
}

/** Why commands cannot run with oneDNN hidden here (a private mount namespace needs root). */
function hidingProblem(lib: string | undefined): string | false {
  if (!lib) return 'oneDNN is not installed, so there is nothing to hide';
  const r = spawnSync('unshare', ['-m', 'sh', '-c', `mount --bind /dev/null ${lib}`], { encoding: 'utf8' });
  return r.status === 0
    ? false
    : `cannot make a private mount namespace (unshare -m: ${(r.stderr || String(r.error)).trim()})`;
}

/** `cmd args` in a mount namespace where oneDNN's library is an empty file. */
function runHidden(lib: string, cmd: string, args: string[], cwd: string, env = userEnv()): Run {
  return run(
    'unshare',
    ['-m', 'sh', '-c', `mount --bind /dev/null ${lib} && exec "$@"`, 'sh', cmd, ...args],
    cwd,
    env,
  );
}

const EMBED_SCRIPT = `
import { CavMae, kernelStatus } from 'cavmae';
const [model, audio, image] = process.argv.slice(2);
const m = await CavMae.load(model);
const a = await m.embedAudio(audio);
const v = await m.embedImage(image);
const k = kernelStatus();
console.log(JSON.stringify({ kernels: k.name, addon: k.addon, isa: k.native?.isa, reason: k.reason,
  audio: Array.from(a.pooled), image: Array.from(v.pooled) }));
`;

const REQUIRE_SCRIPT = `
const cavmae = require('cavmae');
console.log(JSON.stringify({ CavMae: typeof cavmae.CavMae, kernelStatus: typeof cavmae.kernelStatus }));
`;

const TYPES_SCRIPT = `
import { CavMae, type Embedding } from 'cavmae';
const m: CavMae = await CavMae.load('model.safetensors');
const e: Embedding = await m.embedAudio('a.wav');
const n: number = e.pooled.length;
export { n };
`;

interface Embedded {
  kernels: string;
  addon?: string;
  isa?: string;
  reason?: string;
  audio: number[];
  image: number[];
}

function embed(
  project: string,
  runner: (cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv) => Run,
  env = userEnv(),
) {
  const r = ok(
    runner(process.execPath, ['embed.mjs', MODEL, AUDIO, IMAGE], project, env),
    'the embedding script',
  );
  return { out: JSON.parse(r.stdout.trim().split('\n').pop()!) as Embedded, stderr: r.stderr };
}

function newProject(parent: string, name: string): string {
  const dir = join(parent, name);
  cpSync(join(parent, 'template'), dir, { recursive: true });
  return dir;
}

/** A new project holding the dependencies as project `from` installed them (saves compiling
 * hnswlib-node again), but not cavmae: it gets installed afresh. */
function projectWithDependenciesOf(from: string, name: string): string {
  const dir = newProject(dirname(from), name);
  for (const dep of readdirSync(join(from, 'node_modules')))
    if (dep !== 'cavmae' && dep !== '.package-lock.json')
      cpSync(join(from, 'node_modules', dep), join(dir, 'node_modules', dep), {
        recursive: true,
        verbatimSymlinks: true,
      });
  return dir;
}

test(
  'npm pack → npm install in a new project: CLI, ESM + types, require, native kernels; without oneDNN: install succeeds, says what to install, TypeScript kernels answer',
  { timeout: 1_500_000 },
  async (t) => {
    const tmp = mkdtempSync(join(tmpdir(), 'cavmae-package-'));
    const timings: Record<string, number> = {};
    try {
      // -- pack (prepack: tsc, stale dist files removed, the addon copied to prebuilds/)
      const pack = ok(run('npm', ['pack', '--json', '--pack-destination', tmp], ROOT), 'npm pack');
      timings.pack = pack.seconds;
      const info = (
        JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as {
          filename: string;
          size: number;
          unpackedSize: number;
          files: { path: string }[];
        }[]
      )[0];
      const tarball = join(tmp, info.filename);
      const files = info.files.map((f) => f.path);
      for (const need of [
        'package.json',
        'README.md',
        'bin/cavmae.js',
        'cjs/index.cjs',
        'dist/src/index.js',
        'dist/src/index.d.ts',
        'native/binding.gyp',
        'native/addon.cc',
        'scripts/native.mjs',
        'prebuilds/linux-x64/cavmae_native.napi.glibc.node',
        'src/serve/page/index.html',
      ])
        assert.ok(files.includes(need), `the package lacks ${need}`);
      const unwanted = files.filter((f) =>
        /^(test|bench|\.ci)\/|fixtures|\.(png|jpg|map|tgz|safetensors|pth|log)$|^docs\/.*\.json$|^dist\/test|install-status/.test(
          f,
        ),
      );
      assert.deepEqual(unwanted, [], 'files users do not need');
      assert.ok(info.size < 2_000_000, `packed size ${info.size} bytes`);
      t.diagnostic(
        `package: ${files.length} files, ${(info.size / 1e6).toFixed(2)} MB packed, ${(info.unpackedSize / 1e6).toFixed(2)} MB unpacked`,
      );

      // -- a user's new project (the tarball's install script approved, as `npm install-scripts approve` writes it)
      const template = join(tmp, 'template');
      mkdirSync(template);
      writeFileSync(
        join(template, 'package.json'),
        JSON.stringify(
          {
            name: 'consumer',
            version: '1.0.0',
            private: true,
            type: 'module',
            allowScripts: { cavmae: true, [`file:${tarball}`]: true, 'hnswlib-node': true },
          },
          null,
          2,
        ),
      );
      writeFileSync(join(template, 'embed.mjs'), EMBED_SCRIPT);
      writeFileSync(join(template, 'require.cjs'), REQUIRE_SCRIPT);
      writeFileSync(join(template, 'types.mts'), TYPES_SCRIPT);
      const npmInstall = [
        'install',
        tarball,
        '--foreground-scripts',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
      ];

      // -- A: the ordinary install: the prebuilt addon is used
      const a = newProject(tmp, 'a');
      const inst = ok(run('npm', npmInstall, a), 'npm install');
      timings.install = inst.seconds;
      assert.match(inst.stdout + inst.stderr, /cavmae: using the prebuilt linux-x64 native addon/);
      assert.equal(
        ok(run('npx', ['--no-install', 'cavmae', '--version'], a), 'npx cavmae --version').stdout.trim(),
        VERSION,
      );
      const native = embed(a, run);
      assert.equal(native.out.kernels, 'native', `kernels in use: ${JSON.stringify(native.out)}`);
      assert.equal(
        native.out.addon,
        realpathSync(
          join(a, 'node_modules', 'cavmae', 'prebuilds', 'linux-x64', 'cavmae_native.napi.glibc.node'),
        ),
      );
      assert.equal(native.stderr, '', 'no notice on the native kernels');
      // The same numbers as the library in this repository (same addon code; tolerance 1e-5 of max|x|).
      const here = await CavMae.load(MODEL);
      const hereAudio = (await here.embedAudio(AUDIO)).pooled;
      const hereImage = (await here.embedImage(IMAGE)).pooled;
      assertClose(native.out.audio, hereAudio, {
        rtol: 1e-5,
        what: 'audio embedding (installed vs repository)',
      });
      assertClose(native.out.image, hereImage, {
        rtol: 1e-5,
        what: 'image embedding (installed vs repository)',
      });
      // require('cavmae') works on this Node (>= 20.19 loads ES modules through require).
      assert.deepEqual(JSON.parse(ok(run(process.execPath, ['require.cjs'], a), 'require').stdout), {
        CavMae: 'function',
        kernelStatus: 'function',
      });
      // The types resolve through the package's exports (TypeScript from this repository).
      // (A TypeScript user has @types/node; this project borrows the repository's.)
      const tsconfig = {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        strict: true,
        noEmit: true,
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules', '@types')],
      };
      writeFileSync(
        join(a, 'tsconfig.json'),
        JSON.stringify({ compilerOptions: tsconfig, files: ['types.mts'] }),
      );
      ok(
        run(
          process.execPath,
          [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
          a,
        ),
        'tsc over the installed types',
      );

      // -- A again: build from source with node-gyp against the installed Node headers
      const rebuild = ok(
        run(
          'npm',
          ['rebuild', 'cavmae', '--foreground-scripts'],
          a,
          userEnv({ CAVMAE_BUILD_FROM_SOURCE: '1' }),
        ),
        'npm rebuild cavmae (from source)',
      );
      timings.buildFromSource = rebuild.seconds;
      assert.match(rebuild.stdout + rebuild.stderr, /cavmae: native addon built in \d+ s/);
      const built = embed(a, run);
      assert.equal(built.out.kernels, 'native');
      assert.equal(
        built.out.addon,
        realpathSync(join(a, 'node_modules', 'cavmae', 'native', 'build', 'Release', 'cavmae_native.node')),
      );
      assertClose(built.out.audio, hereAudio, { rtol: 1e-5, what: 'audio embedding (source build)' });

      // -- C: install scripts not run (--ignore-scripts; pnpm's default): the loader finds the prebuilt itself
      const c = projectWithDependenciesOf(a, 'c');
      ok(run('npm', [...npmInstall, '--ignore-scripts'], c), 'npm install --ignore-scripts');
      const unscripted = embed(c, run);
      assert.equal(unscripted.out.kernels, 'native');
      assert.equal(
        unscripted.out.addon,
        realpathSync(
          join(c, 'node_modules', 'cavmae', 'prebuilds', 'linux-x64', 'cavmae_native.napi.glibc.node'),
        ),
      );

      // -- B: the same install where oneDNN's library is hidden
      const lib = oneDnnLibrary();
      const problem = hidingProblem(lib);
      if (problem) {
        t.diagnostic(`oneDNN-hidden install not run: ${problem}`);
      } else {
        const b = projectWithDependenciesOf(a, 'b');
        const hidden = runHidden(lib!, 'npm', npmInstall, b);
        timings.installWithoutOneDnn = hidden.seconds;
        ok(hidden, 'npm install without oneDNN');
        const said = hidden.stdout + hidden.stderr;
        assert.match(said, /cavmae: the fast native kernels are not installed: .*oneDNN/);
        assert.match(said, /sudo apt-get install -y libdnnl-dev/);
        assert.match(said, /npm rebuild cavmae/);
        assert.equal(
          ok(
            runHidden(lib!, 'npx', ['--no-install', 'cavmae', '--version'], b),
            'npx cavmae --version (no oneDNN)',
          ).stdout.trim(),
          VERSION,
        );
        const slow = embed(b, (cmd, args, cwd, env) => runHidden(lib!, cmd, args, cwd, env));
        assert.equal(slow.out.kernels, 'ts');
        assert.match(slow.out.reason ?? '', /libdnnl/);
        const notice = slow.stderr.split('\n').filter((l) => l.trim() !== '');
        assert.equal(notice.length, 1, `one line on stderr, got:\n${slow.stderr}`);
        assert.match(
          notice[0],
          /native kernels unavailable .*TypeScript reference kernels .*apt-get install -y libdnnl-dev.*npm rebuild cavmae.*CAVMAE_QUIET=1/,
        );
        t.diagnostic(`run-time notice: ${notice[0]}`);
        // TypeScript kernels (float64 accumulation) against the native ones: 1e-4 of max|x|.
        assertClose(slow.out.audio, hereAudio, { rtol: 1e-4, what: 'audio embedding (TypeScript kernels)' });
        assertClose(slow.out.image, hereImage, { rtol: 1e-4, what: 'image embedding (TypeScript kernels)' });
        const quiet = embed(
          b,
          (cmd, args, cwd, env) => runHidden(lib!, cmd, args, cwd, env),
          userEnv({ CAVMAE_QUIET: '1' }),
        );
        assert.equal(quiet.out.kernels, 'ts');
        assert.equal(quiet.stderr, '', 'CAVMAE_QUIET=1 silences the notice');
      }
      t.diagnostic(`seconds: ${JSON.stringify(timings)}`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
);
