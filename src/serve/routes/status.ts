/** GET /api/health (no token needed) and /api/info (engine, index, limits, queue). */
import { sendJson } from '../http.js';
import type { RouteTable, ServerContext } from '../router.js';

export function statusRoutes(ctx: ServerContext): RouteTable {
  const { engine, limits, queue } = ctx;
  return {
    '/api/health': {
      method: 'GET',
      auth: false,
      handle: async (_req, res) => {
        sendJson(res, 200, { status: 'ok', queue: queue.stats() });
        return 200;
      },
    },
    '/api/info': {
      method: 'GET',
      auth: true,
      handle: async (_req, res) => {
        engine.index?.refresh();
        sendJson(res, 200, {
          engine: engine.info(),
          index: engine.index ? { ...engine.index.stats(), dir: undefined } : null,
          limits: {
            maxUploadMb: limits.maxFileBytes / 1048576,
            maxDurationSec: limits.maxDurationSec,
            maxFiles: limits.maxFiles,
          },
          queue: queue.stats(),
        });
        return 200;
      },
    },
  };
}
