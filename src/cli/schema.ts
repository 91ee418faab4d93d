/**
 * Option schemas: each command declares one table, and everything about its flags comes from it.
 * A table's key is the option's name in the library API (`batchSize`, `maskRatio`), its value a
 * spec made by the builders below: the flag with its placeholder, the help text, a shared parser
 * that validates the value, the default. `defineCommand` registers the commander options in table
 * order, hands the action a typed object (`Parsed<typeof TABLE>`, keyed by API names), and turns a
 * library `OptionError` naming an API option into the same message naming the flag.
 *
 * A new command is a file in ./commands/ (main.ts finds it) exporting `register`:
 *
 *   const OPTIONS = {
 *     file: optionalArgument('[file]', 'a media file'),
 *     model: str('--model <file>', 'model checkpoint', { required: true }),
 *     top: int('--top <k>', 'how many classes to list', { min: 1, default: 5 }),
 *     mode: oneOf('--mode <m>', 'cross, same or all', ['cross', 'same', 'all'] as const),
 *     json: JSON_OUT,                                            // shared entries: ./options.ts
 *   };
 *   export function register(program: Command): void {
 *     defineCommand(program, 'thing', 'what it does', OPTIONS, async (o) => {
 *       const { doThing } = await import('../../somewhere/thing.js');   // lazy: --help stays fast
 *       await doThing(o);                         // o.top: number, o.mode: 'cross' | ... | undefined
 *     });
 *   }
 *
 * Help texts state defaults that the library applies ("(default 32)"); a `default` here is one the
 * CLI applies and commander prints. Checks between several options stay in the action.
 */
import { Command, Option } from 'commander';
import { OptionError, UserError } from '../util/errors.js';

/** One flag or positional argument producing a value of type T (phantom `value`). */
export interface Spec<T> {
  /** commander syntax: '--batch-size <n>', '--json', '--no-noise'; arguments '<in>', '[file]', '<in...>'. */
  readonly flags: string;
  readonly help: string;
  readonly kind: 'option' | 'argument' | 'tristate';
  /** Parses and validates one raw value (messages name the flag). */
  readonly parse?: (raw: string) => unknown;
  readonly default?: unknown;
  readonly required?: boolean;
  /** Switches: the value only when given on the command line, else undefined. */
  readonly explicit?: boolean;
  /** tristate: the negating flag and its help. */
  readonly negation?: { flags: string; help: string };
  readonly value?: T;
}

export type Schema = Record<string, Spec<unknown>>;
export type Parsed<S extends Schema> = { [K in keyof S]: S[K] extends Spec<infer T> ? T : never };

interface Presence<T> {
  default?: T;
  required?: boolean;
}
/** T when a default or `required` guarantees a value, else T | undefined. */
type Value<T, O> = O extends { default: unknown } | { required: true } ? T : T | undefined;

export interface Range {
  min?: number;
  max?: number;
  /** Numbers: min and max themselves are excluded. */
  exclusive?: boolean;
}

/** The long flag of a flags string ('--batch-size <n>' -> '--batch-size'). */
export function flagName(flags: string): string {
  return /--[\w-]+/.exec(flags)?.[0] ?? flags;
}

function valueSpec<T, O extends Presence<T>>(
  flags: string,
  help: string,
  parse: (raw: string, flag: string) => T,
  o?: O,
): Spec<Value<T, O>> {
  const flag = flagName(flags);
  return { flags, help, kind: 'option', parse: (raw) => parse(raw, flag), ...o };
}

function rangeText(r: Range, what: 'integer' | 'number'): string {
  const a = what === 'integer' ? 'an integer' : 'a number';
  if (r.min !== undefined && r.max !== undefined) {
    if (what === 'integer') return `${a} in ${r.min}..${r.max}`;
    return r.exclusive ? `${a} in (${r.min}, ${r.max})` : `${a} in [${r.min}, ${r.max}]`;
  }
  if (r.min !== undefined) {
    if (what === 'integer' && r.min === 1) return 'a positive integer';
    if (what === 'number' && r.min === 0 && r.exclusive) return 'a positive number';
    return `${a} ${r.exclusive ? '>' : '>='} ${r.min}`;
  }
  if (r.max !== undefined) return `${a} ${r.exclusive ? '<' : '<='} ${r.max}`;
  return a;
}

function inRange(n: number, r: Range): boolean {
  if (r.exclusive) return (r.min === undefined || n > r.min) && (r.max === undefined || n < r.max);
  return (r.min === undefined || n >= r.min) && (r.max === undefined || n <= r.max);
}

/** Shared parsers (also for values inside lists): throw a UserError naming `flag`. */
export function parseNumber(raw: string, flag: string, r: Range & { integer?: boolean } = {}): number {
  const n = Number(raw);
  const what = r.integer ? 'integer' : 'number';
  if (raw.trim() === '' || !Number.isFinite(n) || (r.integer && !Number.isInteger(n)) || !inRange(n, r))
    throw new UserError(`${flag} must be ${rangeText(r, what)}, got '${raw}'`);
  return n;
}

/** "a, b or c" */
export function orList(items: readonly string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

/** Comma-separated items, trimmed, empty ones dropped. */
export function splitList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A string (file, folder, name). */
export function str<O extends Presence<string>>(flags: string, help: string, o?: O): Spec<Value<string, O>> {
  return valueSpec(flags, help, (raw) => raw, o);
}

export function int<O extends Presence<number> & Range>(
  flags: string,
  help: string,
  o?: O,
): Spec<Value<number, O>> {
  return valueSpec(flags, help, (raw, flag) => parseNumber(raw, flag, { ...o, integer: true }), o);
}

export function num<O extends Presence<number> & Range>(
  flags: string,
  help: string,
  o?: O,
): Spec<Value<number, O>> {
  return valueSpec(flags, help, (raw, flag) => parseNumber(raw, flag, o), o);
}

/** One of fixed choices: "--mode must be cross, same or all, got 'x'". */
export function oneOf<C extends string, O extends Presence<C>>(
  flags: string,
  help: string,
  choices: readonly C[],
  o?: O,
): Spec<Value<C, O>> {
  return valueSpec(flags, help, (raw, flag) => parseChoice(raw, flag, choices), o);
}

export function parseChoice<C extends string>(raw: string, flag: string, choices: readonly C[]): C {
  if (!choices.includes(raw as C)) throw new UserError(`${flag} must be ${orList(choices)}, got '${raw}'`);
  return raw as C;
}

/** A name the library checks against its own list (its error names the option); typed as the API's union. */
export function apiEnum<T extends string>(flags: string, help: string): Spec<T | undefined> {
  return valueSpec(flags, help, (raw) => raw as T);
}

/** A comma-separated list; `item` parses (and validates) each entry. */
export function list<T = string, O extends Presence<T[]> = Presence<T[]>>(
  flags: string,
  help: string,
  item?: (s: string, flag: string) => T,
  o?: O,
): Spec<Value<T[], O>> {
  return valueSpec(
    flags,
    help,
    (raw, flag) => {
      const items = splitList(raw);
      if (items.length === 0) throw new UserError(`${flag} needs a comma-separated list, got '${raw}'`);
      return items.map((s) => (item ? item(s, flag) : (s as T)));
    },
    o,
  );
}

/** Any other value: `parse(raw, flag)` validates and converts. */
export function custom<T, O extends Presence<T> = Presence<T>>(
  flags: string,
  help: string,
  parse: (raw: string, flag: string) => T,
  o?: O,
): Spec<Value<T, O>> {
  return valueSpec(flags, help, parse, o);
}

/** A flag that may be given several times ('--map A=B --map C=D'): every value, in order. */
export function repeated(flags: string, help: string): Spec<string[]> {
  // commander hands an argument parser the value so far: accumulate instead of replacing.
  const parse = (raw: string, previous?: string[]): string[] => [...(previous ?? []), raw];
  return { flags, help, kind: 'option', parse: parse as (raw: string) => unknown, default: [] };
}

/** A switch: true when given, else undefined. */
export function flag(flags: string, help: string): Spec<boolean | undefined> {
  return { flags, help, kind: 'option' };
}

/** `--no-x`: true unless given (with `explicit`: false when given, else undefined). */
export function negatable(flags: string, help: string): Spec<boolean>;
export function negatable(flags: string, help: string, o: { explicit: true }): Spec<boolean | undefined>;
export function negatable(flags: string, help: string, o?: { explicit: true }): Spec<boolean | undefined> {
  return { flags, help, kind: 'option', explicit: o?.explicit };
}

/** `--x` and `--no-x`: true, false, or undefined when neither is given. */
export function tristate(
  flags: string,
  help: string,
  negFlags: string,
  negHelp: string,
): Spec<boolean | undefined> {
  return { flags, help, kind: 'tristate', negation: { flags: negFlags, help: negHelp } };
}

/** Positional arguments, in table order: '<name>' (string), '[name]' (string | undefined), '<name...>'. */
export function argument(name: string, help: string): Spec<string> {
  return { flags: name, help, kind: 'argument' };
}
export function optionalArgument(name: string, help: string): Spec<string | undefined> {
  return { flags: name, help, kind: 'argument' };
}
export function variadicArgument(name: string, help: string): Spec<string[]> {
  return { flags: name, help, kind: 'argument' };
}

function option(flags: string, help: string, s: Spec<unknown>): Option {
  const o = new Option(flags, help);
  if (s.parse) o.argParser(s.parse);
  if (s.default !== undefined) o.default(s.default);
  if (s.required) o.makeOptionMandatory();
  return o;
}

/** Registers a schema's options and arguments on `cmd` (in table order). */
export function addOptions(cmd: Command, schema: Schema): Command {
  for (const s of Object.values(schema)) {
    if (s.kind === 'argument') cmd.argument(s.flags, s.help);
    else cmd.addOption(option(s.flags, s.help, s));
    if (s.negation) cmd.addOption(option(s.negation.flags, s.negation.help, { ...s, parse: undefined }));
  }
  return cmd;
}

/** The typed values of a parsed command, keyed as the schema (API option names). */
export function readOptions<S extends Schema>(schema: S, cmd: Command): Parsed<S> {
  const out: Record<string, unknown> = {};
  let arg = 0;
  for (const [key, s] of Object.entries(schema)) {
    if (s.kind === 'argument') {
      const value: unknown = cmd.processedArgs[arg++];
      if (value !== undefined) out[key] = value;
      continue;
    }
    const attribute = new Option(s.flags).attributeName();
    const given = cmd.getOptionValueSource(attribute) === 'cli';
    const value: unknown = cmd.getOptionValue(attribute);
    // Absent options stay absent keys (as commander leaves them): `{ ...o }` passes no undefined.
    if (value !== undefined && (given || !s.explicit)) out[key] = value;
  }
  return out as Parsed<S>;
}

/** A library error that names API options, re-worded with the schema's flags. */
export function toCliError(e: unknown, schema: Schema): unknown {
  if (!(e instanceof OptionError)) return e;
  const flagOf = (option: string): string => {
    const s = schema[option];
    return s && s.kind !== 'argument' ? flagName(s.flags) : option;
  };
  return new UserError(e.text(flagOf), e.exitCode);
}

export interface RunContext {
  /** Whether the option under this key was given on the command line (not a default). */
  given(key: string): boolean;
}

/** Defines `parent <name>` from a schema; `run` gets the typed values. */
export function defineCommand<S extends Schema>(
  parent: Command,
  name: string,
  description: string,
  schema: S,
  run: (o: Parsed<S>, ctx: RunContext) => Promise<void> | void,
): Command {
  const cmd = addOptions(parent.command(name).description(description), schema);
  return cmd.action(async () => {
    const given = (key: string): boolean =>
      schema[key] !== undefined &&
      cmd.getOptionValueSource(new Option(schema[key].flags).attributeName()) === 'cli';
    try {
      await run(readOptions(schema, cmd), { given });
    } catch (e) {
      throw toCliError(e, schema);
    }
  });
}
