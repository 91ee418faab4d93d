/** Posting files to a running server (the API server tests). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { CavMae } from '../../src/api/cavmae.js';
import type { RunningServer } from '../../src/serve/index.js';

/** POSTs `files` ([form field, path]) as multipart form data; the status and the JSON answer. */
export async function postFiles<T>(
  s: RunningServer,
  path: string,
  files: [string, string][],
): Promise<{ status: number; json: T }> {
  const fd = new FormData();
  for (const [field, p] of files) fd.append(field, new Blob([readFileSync(p)]), basename(p));
  const res = await fetch(new URL(path, s.url), { method: 'POST', body: fd });
  return { status: res.status, json: (await res.json()) as T };
}

/** /api/reconstruct of an image + audio pair answers the API's MSEs exactly (same computation, JSON numbers). */
export async function assertReconstructOverHttp(
  s: RunningServer,
  api: CavMae,
  image: string,
  audio: string,
): Promise<void> {
  const rec = await postFiles<{ mseAudio: number; mseVisual: number }>(
    s,
    '/api/reconstruct?ratio=0.5&mode=time',
    [
      ['image', image],
      ['audio', audio],
    ],
  );
  assert.equal(rec.status, 200, JSON.stringify(rec.json));
  const want = await api.reconstruct({ image, audio }, { maskRatio: 0.5, maskMode: 'time' });
  assert.deepEqual([rec.json.mseAudio, rec.json.mseVisual], [want.mseAudio, want.mseVisual]);
}
