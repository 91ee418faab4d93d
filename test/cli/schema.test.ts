// The option schema layer (src/cli/schema.ts): parsers and their messages, values keyed by API
// names, switches, tristates, positional arguments, and library OptionErrors re-worded with flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import {
  defineCommand,
  flag,
  int,
  list,
  negatable,
  num,
  oneOf,
  optionalArgument,
  str,
  tristate,
  variadicArgument,
  type Parsed,
  type RunContext,
} from '../../src/cli/schema.js';
import { OptionError, UserError } from '../../src/util/errors.js';

const OPTIONS = {
  files: variadicArgument('<files...>', 'inputs'),
  batchSize: int('--batch <n>', 'items per batch', { min: 1, default: 16 }),
  maskRatio: num('--mask-ratio <r>', 'ratio', { min: 0, max: 1, exclusive: true }),
  frame: int('--frame <i>', 'frame', { min: 0, max: 9 }),
  mode: oneOf('--mode <m>', 'mode', ['cross', 'same', 'all'] as const, { default: 'all' }),
  tasks: list('--tasks <list>', 'tasks'),
  model: str('--model <file>', 'model', { required: true }),
  thumbnails: negatable('--no-thumbnails', 'no thumbnails'),
  noise: negatable('--no-noise', 'no noise', { explicit: true }),
  normPixLoss: tristate('--norm-pix-loss', 'normalised', '--no-norm-pix-loss', 'raw'),
  json: flag('--json', 'json'),
};

/** Parses argv with a fresh `cavmae t` command; the action's values, context, or the error. */
async function run(
  argv: string[],
  body: (o: Parsed<typeof OPTIONS>) => void = () => {},
): Promise<{ o?: Parsed<typeof OPTIONS>; ctx?: RunContext; error?: Error }> {
  const program = new Command().exitOverride();
  const out: { o?: Parsed<typeof OPTIONS>; ctx?: RunContext; error?: Error } = {};
  defineCommand(program, 't', 'test', OPTIONS, (o, ctx) => {
    out.o = o;
    out.ctx = ctx;
    body(o);
  }).exitOverride();
  try {
    await program.parseAsync(['node', 'cavmae', 't', ...argv]);
  } catch (e) {
    out.error = e as Error;
  }
  return out;
}

test('values arrive under their API names, typed, with defaults; absent options are absent keys', async () => {
  const { o, ctx, error } = await run([
    'a.wav',
    'b.wav',
    '--model',
    'm.pth',
    '--batch',
    '4',
    '--mask-ratio',
    '0.5',
  ]);
  assert.equal(error, undefined);
  assert.deepEqual(o, {
    files: ['a.wav', 'b.wav'],
    batchSize: 4,
    maskRatio: 0.5,
    mode: 'all',
    model: 'm.pth',
    thumbnails: true,
  });
  assert.ok(!('frame' in o!), 'an absent option is no key (so `{ ...o }` passes no undefined)');
  assert.equal(ctx!.given('batchSize'), true);
  assert.equal(ctx!.given('mode'), false);
});

test('switches: negations, explicit-only negations and tristates', async () => {
  const a = await run(['x', '--model', 'm', '--no-thumbnails', '--no-noise', '--no-norm-pix-loss', '--json']);
  assert.deepEqual([a.o!.thumbnails, a.o!.noise, a.o!.normPixLoss, a.o!.json], [false, false, false, true]);
  const b = await run(['x', '--model', 'm', '--norm-pix-loss']);
  assert.deepEqual(
    [b.o!.thumbnails, b.o!.noise, b.o!.normPixLoss, b.o!.json],
    [true, undefined, true, undefined],
  );
});

test('parsers refuse bad values with one message naming the flag', async () => {
  const cases: [string[], RegExp][] = [
    [['--batch', '0'], /^--batch must be a positive integer, got '0'$/],
    [['--batch', '2.5'], /^--batch must be a positive integer, got '2.5'$/],
    [['--mask-ratio', '1'], /^--mask-ratio must be a number in \(0, 1\), got '1'$/],
    [['--mask-ratio', ''], /^--mask-ratio must be a number in \(0, 1\), got ''$/],
    [['--frame', '10'], /^--frame must be an integer in 0\.\.9, got '10'$/],
    [['--mode', 'near'], /^--mode must be cross, same or all, got 'near'$/],
    [['--tasks', ' , '], /^--tasks needs a comma-separated list, got ' , '$/],
  ];
  for (const [argv, message] of cases) {
    const { error } = await run(['x', '--model', 'm', ...argv]);
    assert.ok(error instanceof UserError, `${argv.join(' ')}: ${String(error)}`);
    assert.match(error.message, message);
  }
  const { o } = await run(['x', '--model', 'm', '--tasks', 'embed, ft,,']);
  assert.deepEqual(o!.tasks, ['embed', 'ft']);
});

test('a library OptionError names the API options; through the command it names the flags', async () => {
  const fail = () => {
    throw new OptionError(
      (n) => `${n('maskRatio')} must be in (0, 1) and ${n('batchSize')} even; ${n('other')}`,
    );
  };
  assert.throws(fail, /OptionError: maskRatio must be in \(0, 1\) and batchSize even; other$/);
  const { error } = await run(['x', '--model', 'm'], fail);
  assert.ok(error instanceof UserError && !(error instanceof OptionError));
  assert.equal(error.message, '--mask-ratio must be in (0, 1) and --batch even; other');
  const plain = await run(['x', '--model', 'm'], () => {
    throw new UserError('maskRatio stays as it is');
  });
  assert.equal(plain.error!.message, 'maskRatio stays as it is');
});

test('optional positional arguments are undefined when absent', async () => {
  const program = new Command().exitOverride();
  let seen: { file?: string } | undefined;
  defineCommand(program, 'one', 'test', { file: optionalArgument('[file]', 'f') }, (o) => {
    seen = o;
  });
  await program.parseAsync(['node', 'cavmae', 'one']);
  assert.deepEqual(seen, {});
  await program.parseAsync(['node', 'cavmae', 'one', 'x.mp4']);
  assert.deepEqual(seen, { file: 'x.mp4' });
});
