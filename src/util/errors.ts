/**
 * An error meant for a person: its message names the file (or input) and the problem.
 * The CLI prints it as one line without a stack trace and exits non-zero.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

/** Error about a specific file: "<path>: <problem>". */
export function fileError(path: string, problem: string): UserError {
  return new UserError(`${path}: ${problem}`);
}

/**
 * An error about options of a library function, worded with their API names
 * (`maskRatio must be in (0, 1), got 1.5`). `text` builds the message from a namer: the library
 * names the options as the API does, the CLI re-renders it with its flags (`--mask-ratio must
 * be ...`, src/cli/schema.ts).
 */
export class OptionError extends UserError {
  constructor(readonly text: (name: (option: string) => string) => string) {
    super(text((option) => option));
    this.name = 'OptionError';
  }
}
