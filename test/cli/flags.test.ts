// Every command keeps its flags: the flag set of each command (name, value or switch, required,
// negation, variadic, default, positional arguments) is compared with a snapshot taken on main
// before the option schemas (src/cli/schema.ts) replaced the hand-written option blocks.
// Commands and flags added later are allowed; nothing in the snapshot may go missing or change.
// CAVMAE_WRITE_CLI_FLAGS=1 rewrites the snapshot (only after a deliberate change of a flag).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { repoRoot } from '../helpers.js';

interface FlagShape {
  short: string | null;
  value: 'required' | 'optional' | 'none';
  mandatory: boolean;
  negate: boolean;
  variadic: boolean;
  attribute: string;
  /** String() of the registered default (a parser may now return 11 where "11" was stored). */
  default: string | null;
}

interface CommandShape {
  arguments: { name: string; required: boolean; variadic: boolean }[];
  options: Record<string, FlagShape>;
}

const SNAPSHOT = join(repoRoot(), 'test', 'fixtures', 'cli', 'flags.json');

function describe(cmd: Command, prefix: string, out: Record<string, CommandShape>): void {
  for (const sub of cmd.commands) {
    const name = `${prefix}${sub.name()}`;
    const options: Record<string, FlagShape> = {};
    for (const o of sub.options) {
      const attribute = o.attributeName();
      const dflt = sub.getOptionValue(attribute) as unknown;
      options[o.long ?? o.flags] = {
        short: o.short ?? null,
        value: o.required ? 'required' : o.optional ? 'optional' : 'none',
        mandatory: o.mandatory,
        negate: o.negate,
        variadic: o.variadic,
        attribute,
        default: dflt === undefined ? null : String(dflt),
      };
    }
    out[name] = {
      arguments: sub.registeredArguments.map((a) => ({
        name: a.name(),
        required: a.required,
        variadic: a.variadic,
      })),
      options,
    };
    describe(sub, `${name} `, out);
  }
}

/** One line per command and per flag, so that a change reads as a small diff. */
function snapshotText(shapes: Record<string, CommandShape>): string {
  const commands = Object.entries(shapes).map(([name, c]) => {
    const flags = Object.entries(c.options).map(([f, o]) => `   ${JSON.stringify(f)}: ${JSON.stringify(o)}`);
    return ` ${JSON.stringify(name)}: {\n  "arguments": ${JSON.stringify(c.arguments)},\n  "options": {\n${flags.join(',\n')}\n  }\n }`;
  });
  return `{\n${commands.join(',\n')}\n}\n`;
}

test('every command has the flags, defaults and arguments it had on main', async () => {
  const now: Record<string, CommandShape> = {};
  describe(await buildProgram(), '', now);
  if (process.env.CAVMAE_WRITE_CLI_FLAGS) writeFileSync(SNAPSHOT, snapshotText(now));
  const before = JSON.parse(readFileSync(SNAPSHOT, 'utf8')) as Record<string, CommandShape>;
  assert.ok(Object.keys(before).length >= 25, 'the snapshot lists the commands');
  for (const [name, shape] of Object.entries(before)) {
    const cur = now[name];
    assert.ok(cur, `command "${name}" is gone`);
    assert.deepEqual(cur.arguments, shape.arguments, `${name}: positional arguments`);
    for (const [flag, f] of Object.entries(shape.options))
      assert.deepEqual(cur.options[flag], f, `${name} ${flag}`);
  }
});
