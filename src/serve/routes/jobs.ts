/**
 * The model routes, POST /api/embed, /api/search?k=&mode=&approximate=, /api/classify?top=,
 * /api/localize (image + audio, or one video), /api/reconstruct?ratio=&mode= (same inputs).
 * Parameters are checked before the upload is read; admission to the bounded queue too, so
 * memory and temporary disk stay bounded; the deadline covers waiting and running.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, join } from 'node:path';
import type { SearchHit } from '../../index/types.js';
import { UserError } from '../../util/errors.js';
import { MASK_MODES, type MediaInput, type SearchMode } from '../engine.js';
import { enumParam, HttpError, intParam, numberParam, sendJson } from '../http.js';
import { QueueFullError } from '../queue.js';
import type { RouteTable, ServerContext } from '../router.js';
import { checkSameOrigin } from '../security.js';
import { inspectUpload, maxRequestBytes, receiveMultipart, removeDir, type UploadedFile } from '../upload.js';

type JobRoute = 'embed' | 'search' | 'classify' | 'localize' | 'reconstruct';
const JOB_ROUTES: readonly JobRoute[] = ['embed', 'search', 'classify', 'localize', 'reconstruct'];

function hitJson(h: SearchHit): Record<string, unknown> {
  const e = h.entry;
  return {
    id: h.id,
    score: h.score,
    name: basename(e.path),
    modality: e.modality,
    hasAudio: e.hasAudio,
    hasVisual: e.hasVisual,
    media: `/media/${h.id}`,
    thumb: e.thumb ? `/media/${h.id}/thumb` : null,
  };
}

function dataUrl(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString('base64')}`;
}

/** Whether an uploaded file can play a role (form field) of a route. */
function fitsRole(f: UploadedFile, role: 'audio' | 'image' | 'video' | 'file'): boolean {
  if (role === 'file') return true;
  if (role === 'audio') return f.kind === 'audio' || (f.kind === 'video' && f.hasAudio);
  if (role === 'image') return f.kind === 'image' || (f.kind === 'video' && f.hasVideo);
  return f.kind === 'video';
}

/** Maps received files onto a route's inputs (throws 400 on a wrong combination). */
function routeInputs(
  route: JobRoute,
  files: UploadedFile[],
): { single?: UploadedFile; image?: UploadedFile; audio?: UploadedFile } {
  if (files.length === 0)
    throw new HttpError(
      400,
      'missing_file',
      'no file in the upload (form field "file", "audio", "image" or "video")',
    );
  for (const f of files) {
    if (!fitsRole(f, f.field as 'audio' | 'image' | 'video' | 'file')) {
      const needs =
        f.field === 'audio'
          ? 'audio (or a video with sound)'
          : f.field === 'image'
            ? 'an image (or a video)'
            : 'a video';
      throw new HttpError(415, 'wrong_kind', `${f.name}: field "${f.field}" needs ${needs}, got ${f.kind}`);
    }
  }
  if (route === 'localize' || route === 'reconstruct') {
    if (files.length === 1) {
      const f = files[0];
      if (f.kind !== 'video' || !f.hasAudio || !f.hasVideo) {
        throw new HttpError(
          400,
          'missing_file',
          `${route} needs an image and an audio file, or one video with sound`,
        );
      }
      return { image: f, audio: f };
    }
    const image =
      files.find((f) => f.field === 'image') ??
      files.find((f) => f.field !== 'audio' && fitsRole(f, 'image'));
    const audio = files.find((f) => f !== image && (f.field === 'audio' || fitsRole(f, 'audio')));
    if (!image || !audio || !fitsRole(image, 'image') || !fitsRole(audio, 'audio')) {
      throw new HttpError(
        400,
        'missing_file',
        `${route} needs an image (field "image") and an audio file (field "audio")`,
      );
    }
    return { image, audio };
  }
  if (files.length !== 1) throw new HttpError(400, 'too_many_files', `${route} takes one file`);
  return { single: files[0] };
}

function toInput(f: UploadedFile): MediaInput {
  return {
    kind: f.kind,
    data: readFileSync(f.path),
    name: f.name,
    path: f.path,
    ...(f.durationSec !== undefined ? { durationSec: f.durationSec } : {}),
  };
}

export function jobRoutes(ctx: ServerContext): RouteTable {
  const { engine, limits, queue, jobTimeoutMs } = ctx;
  let requestCounter = 0;

  async function handleJob(
    req: IncomingMessage,
    res: ServerResponse,
    route: JobRoute,
    url: URL,
  ): Promise<number> {
    checkSameOrigin(req);
    // Parameters first: a bad one costs no upload.
    const k = route === 'search' ? intParam(url, 'k', 10, 1, 1000) : 0;
    const mode =
      route === 'search' ? enumParam<SearchMode>(url, 'mode', 'all', ['all', 'cross', 'same']) : 'all';
    const approximate =
      route === 'search' ? enumParam(url, 'approximate', '0', ['0', '1', 'true', 'false']) : '0';
    const top = route === 'classify' ? intParam(url, 'top', 5, 1, 100) : 0;
    const ratio = route === 'reconstruct' ? numberParam(url, 'ratio', 0.75, 0.05, 0.95) : 0;
    const maskMode =
      route === 'reconstruct' ? enumParam(url, 'mode', 'unstructured', MASK_MODES) : 'unstructured';
    const info = engine.info();
    if (
      (route === 'classify' || route === 'localize' || route === 'reconstruct') &&
      !info.capabilities[route]
    ) {
      throw new HttpError(501, 'not_supported', `the loaded model cannot ${route} (${info.modelName})`);
    }
    if (route === 'search' && !engine.index)
      throw new HttpError(409, 'no_index', 'the server was started without an index (--index)');
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxRequestBytes(limits)) {
      const mb = Math.round(limits.maxFileBytes / 1048576);
      const message = `upload of ${declared} bytes is larger than the ${mb} MB limit`;
      throw new HttpError(413, 'size_limit', message, { Connection: 'close' });
    }
    let ticket;
    try {
      ticket = queue.admit();
    } catch (e) {
      if (e instanceof QueueFullError)
        throw new HttpError(503, 'busy', 'the server is busy; try again shortly', { 'Retry-After': '5' });
      throw e; // closed: the server answers 503 shutting_down
    }
    const dir = join(ctx.tmpRoot, `req-${++requestCounter}`);
    try {
      const received = await receiveMultipart(req, dir, limits);
      const files: UploadedFile[] = [];
      for (const f of received.files) files.push(await inspectUpload(f, limits));
      const inputs = routeInputs(route, files);
      const names = new Map(files.map((f) => [f.path, f.name]));
      // localize, reconstruct: one video may stand for both inputs.
      const pair = () => {
        const image = toInput(inputs.image!);
        return { image, audio: inputs.audio === inputs.image ? image : toInput(inputs.audio!) };
      };
      const job = ticket.run(async () => {
        switch (route) {
          case 'embed': {
            const e = await engine.embed(toInput(inputs.single!));
            return {
              kind: inputs.single!.kind,
              dim: info.dim,
              audio: e.audio ? Array.from(e.audio) : null,
              visual: e.visual ? Array.from(e.visual) : null,
            };
          }
          case 'search': {
            await engine.index!.refresh();
            const r = await engine.search(toInput(inputs.single!), {
              k,
              mode,
              approximate: approximate === '1' || approximate === 'true',
            });
            return {
              query: { ...r.query, name: inputs.single!.name },
              lists: r.lists.map((l) => ({ from: l.from, to: l.to, hits: l.hits.map(hitJson) })),
            };
          }
          case 'classify': {
            const r = await engine.classify(toInput(inputs.single!), { top });
            return { kind: inputs.single!.kind, activation: r.activation, labels: r.labels };
          }
          case 'localize': {
            const { image, audio } = pair();
            const r = await engine.localize(image, audio);
            return {
              width: r.width,
              height: r.height,
              heat: Array.from(r.heat, (v) => Math.round(v * 1e4) / 1e4),
              overlay: dataUrl(r.overlayPng),
              ...(r.frames
                ? { frames: r.frames.map((f) => ({ frame: f.frame, overlay: dataUrl(f.overlayPng) })) }
                : {}),
            };
          }
          case 'reconstruct': {
            const r = await engine.reconstruct(pair(), ratio, maskMode);
            return {
              ratio,
              mode: maskMode,
              mseAudio: r.mseAudio,
              mseVisual: r.mseVisual,
              panel: dataUrl(r.panelPng),
            };
          }
        }
      });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, fail) => {
        const s = Math.round(jobTimeoutMs / 1000);
        timer = setTimeout(
          () => fail(new HttpError(504, 'timeout', `the model did not answer within ${s} s`)),
          jobTimeoutMs,
        );
      });
      job.catch(() => {}); // a job finishing after its deadline is discarded
      try {
        const body = await Promise.race([job, deadline]);
        sendJson(res, 200, body);
        return 200;
      } catch (e) {
        if (e instanceof UserError) {
          let msg = e.message;
          for (const [p, n] of names) msg = msg.split(p).join(n);
          throw new HttpError(422, 'unprocessable', msg.split(dir).join('upload'));
        }
        throw e;
      } finally {
        clearTimeout(timer);
      }
    } finally {
      ticket.release();
      removeDir(dir);
    }
  }

  return Object.fromEntries(
    JOB_ROUTES.map((route) => [
      `/api/${route}`,
      { method: 'POST', auth: true, handle: (req, res, url) => handleJob(req, res, route, url) },
    ]),
  );
}
