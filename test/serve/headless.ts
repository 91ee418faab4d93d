// One headless chromium for the web-page tests: a throw-away profile, the flags that keep it off
// the network, and every console error or page error collected for the test to assert on.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Why a browser test cannot run here, or undefined when it can. */
export const chromiumMissing = existsSync(CHROMIUM)
  ? undefined
  : `chromium is not installed at ${CHROMIUM} (apt-get install chromium)`;

export interface Headless {
  page: Page;
  /** Console errors and page errors so far ("console: ...", "page error: ..."). */
  problems: string[];
  close(): Promise<void>;
}

export async function openHeadless(): Promise<Headless> {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'cavmae-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return {
    page,
    problems,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
