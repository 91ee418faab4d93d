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
