/** The commands' cli-progress bars: on stderr, drawn only on a terminal. */
import type { SingleBar } from 'cli-progress';

/** A bar with this format when `show` and stderr is a terminal, else undefined (no output). */
export async function progressBar(
  show: boolean,
  format: string,
  extra: { etaBuffer?: number } = {},
): Promise<SingleBar | undefined> {
  if (!show || !process.stderr.isTTY) return undefined;
  const { default: cliProgress } = await import('cli-progress');
  return new cliProgress.SingleBar(
    { format, stream: process.stderr, hideCursor: true, ...extra },
    cliProgress.Presets.shades_classic,
  );
}
