// The cavmae web page: drop a file, see retrieval results, classes, the localisation heat map
// and the masked reconstruction. Plain DOM code, no build step. Every string from the server
// or a file name is inserted as text, never as HTML.
/* global document, fetch, FormData, URL */
'use strict';

const $ = (id) => document.getElementById(id);
const state = { info: null, main: null, second: null, running: false };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

/** The filled part of a bar; set through CSSOM (the page's CSP forbids style attributes). */
function meterFill(pct) {
  const s = document.createElement('span');
  s.style.width = `${pct.toFixed(1)}%`;
  return s;
}

function setStatus(text, kind = '') {
  const s = $('status');
  s.textContent = text;
  s.className = `status ${kind}`;
}

async function api(path, body) {
  const res = await fetch(path, { method: body ? 'POST' : 'GET', body, credentials: 'same-origin' });
  let json = null;
  try {
    json = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const msg = json && json.error ? json.error.message : `HTTP ${res.status}`;
    const err = new Error(msg);
    err.status = res.status;
    err.code = json && json.error ? json.error.code : 'http';
    throw err;
  }
  return json;
}

/** The client's guess of a file's kind, only to decide which requests make sense. */
function kindOf(file) {
  const t = (file.type || '').split('/')[0];
  if (t === 'audio' || t === 'image' || t === 'video') return t;
  const ext = (file.name.split('.').pop() || '').toLowerCase();
  if (['wav', 'mp3', 'flac', 'ogg', 'opus', 'm4a', 'aac'].includes(ext)) return 'audio';
  if (['jpg', 'jpeg', 'png', 'webp', 'gif', 'tif', 'tiff', 'avif'].includes(ext)) return 'image';
  return 'video';
}

function fmtDim(info) {
  const e = info.engine;
  return `${e.modelName} · d=${e.dim}`;
}

async function loadInfo() {
  try {
    state.info = await api('/api/info');
  } catch (e) {
    if (e.status === 401)
      setStatus(
        'This server needs its token: open the address printed by "cavmae serve" (it ends in ?token=…).',
        'error',
      );
    else setStatus(`Cannot reach the server: ${e.message}`, 'error');
    return;
  }
  const { engine, index, limits } = state.info;
  $('fact-model').textContent = fmtDim(state.info);
  $('fact-model').title = engine.modelId;
  $('fact-index').textContent = index
    ? `${index.count} items (${index.byModality.video} video, ${index.byModality.audio} audio, ${index.byModality.image} image)`
    : 'none';
  $('fact-limits').textContent = `${limits.maxUploadMb} MB · ${limits.maxDurationSec} s`;
}

function preview(file, caption) {
  const url = URL.createObjectURL(file);
  const kind = kindOf(file);
  const media =
    kind === 'image'
      ? el('img', { src: url, alt: `Query image ${file.name}` })
      : kind === 'audio'
        ? el('audio', { src: url, controls: true, 'aria-label': `Query audio ${file.name}` })
        : el('video', {
            src: url,
            controls: true,
            muted: true,
            playsinline: true,
            preload: 'metadata',
            'aria-label': `Query video ${file.name}`,
          });
  return el('figure', {}, media, el('figcaption', { text: `${caption}: ${file.name}` }));
}

function showPreview() {
  const p = $('preview');
  p.replaceChildren();
  if (state.main) p.append(preview(state.main, 'Query'));
  if (state.second) p.append(preview(state.second, 'Second file'));
}

const LIST_TITLES = {
  'audio>visual': ['Pictures that match this sound', 'audio → visual'],
  'visual>audio': ['Sounds that match this picture', 'visual → audio'],
  'audio>audio': ['Similar sounds', 'audio → audio'],
  'visual>visual': ['Similar pictures', 'visual → visual'],
};

function resultCard(hit, rank) {
  const items = [];
  const alt = `${hit.modality} ${hit.name}`;
  if (hit.modality === 'video') {
    items.push(
      el('video', {
        class: 'thumb',
        controls: true,
        preload: 'none',
        poster: hit.thumb || undefined,
        src: hit.media,
        'aria-label': `Play ${hit.name}`,
      }),
    );
  } else if (hit.modality === 'audio') {
    if (hit.thumb)
      items.push(
        el('img', { class: 'thumb', src: hit.thumb, alt: `Spectrogram of ${hit.name}`, loading: 'lazy' }),
      );
  } else {
    const img = el('img', { class: 'thumb', src: hit.thumb || hit.media, alt, loading: 'lazy' });
    items.push(el('a', { href: hit.media, target: '_blank', rel: 'noopener' }, img));
  }
  const pct = Math.max(0, Math.min(1, hit.score)) * 100;
  const bar = el('div', {
    class: 'bar',
    role: 'meter',
    'aria-valuemin': '-1',
    'aria-valuemax': '1',
    'aria-valuenow': hit.score.toFixed(3),
    'aria-label': 'cosine similarity',
  });
  bar.append(meterFill(pct));
  const body = el(
    'div',
    { class: 'body' },
    el(
      'div',
      { class: 'name' },
      el('span', { class: 'rank', text: `${rank}.` }),
      document.createTextNode(hit.name),
    ),
    el(
      'div',
      { class: 'meta' },
      el('span', { text: hit.modality }),
      el('span', { text: `score ${hit.score.toFixed(3)}` }),
    ),
    bar,
  );
  if (hit.modality === 'audio')
    body.append(
      el('audio', { controls: true, preload: 'none', src: hit.media, 'aria-label': `Play ${hit.name}` }),
    );
  return el('li', { class: 'card', 'data-id': hit.id }, ...items, body);
}

function renderSearch(result) {
  const box = $('search-lists');
  box.replaceChildren();
  if (result.lists.length === 0)
    box.append(el('p', { class: 'empty', text: 'The index has no items this query can be compared with.' }));
  for (const list of result.lists) {
    const [title, dir] = LIST_TITLES[`${list.from}>${list.to}`];
    const ol = el('ol', { class: 'results', 'aria-label': title });
    list.hits.forEach((h, i) => ol.append(resultCard(h, i + 1)));
    box.append(
      el(
        'div',
        { class: 'list' },
        el('h3', {}, el('b', { text: title }), document.createTextNode(` · ${dir}`)),
        ol,
      ),
    );
  }
  $('section-search').hidden = false;
}

function renderLabels(result) {
  const ol = $('labels');
  ol.replaceChildren();
  for (const l of result.labels) {
    const bar = el('div', { class: 'bar' });
    bar.append(meterFill(Math.max(0, Math.min(1, l.score)) * 100));
    ol.append(
      el(
        'li',
        {},
        el('span', { text: l.name }),
        el('span', { class: 'score', text: l.score.toFixed(3) }),
        bar,
      ),
    );
  }
  $('section-classify').hidden = false;
}

// Inferno-like colour ramp for the heat map (the same stops as the CSS scale).
const RAMP = [
  [0, 0, 4],
  [87, 16, 110],
  [188, 55, 84],
  [249, 142, 9],
  [252, 255, 164],
];
function ramp(v) {
  const x = Math.max(0, Math.min(1, v)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const t = x - i;
  return RAMP[i].map((a, c) => Math.round(a + (RAMP[i + 1][c] - a) * t));
}

function renderHeat(result) {
  const { width, height, heat } = result;
  const small = document.createElement('canvas');
  small.width = width;
  small.height = height;
  const sctx = small.getContext('2d');
  const img = sctx.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    const [r, g, b] = ramp(heat[i]);
    img.data.set([r, g, b, 255], i * 4);
  }
  sctx.putImageData(img, 0, 0);
  const canvas = $('heatmap');
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = true; // bilinear upsampling, as the reference's localization2
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  canvas.dataset.rendered = 'true';
  $('overlay').src = result.overlay;
  // A CAV-MAE Sync model localises each (segment, frame) pair of a video: one overlay per frame.
  const strip = $('frame-overlays');
  strip.replaceChildren(
    ...(result.frames || []).map((f) => {
      const fig = document.createElement('figure');
      const img = document.createElement('img');
      img.src = f.overlay;
      img.alt = `Frame ${f.frame} with its audio segment's heat map`;
      const cap = document.createElement('figcaption');
      cap.textContent = `frame ${f.frame}`;
      fig.append(img, cap);
      return fig;
    }),
  );
  strip.hidden = !(result.frames && result.frames.length);
  $('section-localize').hidden = false;
}

function renderReconstruction(result) {
  $('panel').src = result.panel;
  $('reconstruct-note').textContent =
    `Mask ratio ${result.ratio} (${result.mode}); mean squared error on masked patches: audio ${result.mseAudio.toFixed(4)}, visual ${result.mseVisual.toFixed(4)}.`;
  $('section-reconstruct').hidden = false;
}

/** The image and audio inputs for localisation/reconstruction, or null when there is no pair. */
function pairForm() {
  const a = state.main;
  const b = state.second;
  const fd = new FormData();
  if (a && !b && kindOf(a) === 'video') {
    fd.append('video', a, a.name);
    return fd;
  }
  if (a && b) {
    const ka = kindOf(a);
    const kb = kindOf(b);
    const image =
      ka === 'image' || (ka === 'video' && kb === 'audio')
        ? a
        : kb === 'image' || (kb === 'video' && ka === 'audio')
          ? b
          : null;
    const audio = image === a ? b : image === b ? a : null;
    if (image && audio) {
      fd.append('image', image, image.name);
      fd.append('audio', audio, audio.name);
      return fd;
    }
  }
  return null;
}

async function run() {
  if (!state.main || state.running) return;
  if (!state.info) await loadInfo();
  if (!state.info) return;
  state.running = true;
  $('run').disabled = true;
  for (const id of ['section-search', 'section-classify', 'section-localize', 'section-reconstruct'])
    $(id).hidden = true;
  const caps = state.info.engine.capabilities;
  const errors = [];
  const step = async (label, fn) => {
    setStatus(`${label}…`, 'busy');
    try {
      await fn();
    } catch (e) {
      errors.push(`${label}: ${e.message}`);
    }
  };
  const one = () => {
    const fd = new FormData();
    fd.append('file', state.main, state.main.name);
    return fd;
  };
  const k = Math.max(1, Math.min(50, Number($('opt-k').value) || 8));
  if (state.info.index && state.info.index.count > 0) {
    await step('Searching the index', async () =>
      renderSearch(await api(`/api/search?k=${k}&mode=${encodeURIComponent($('opt-mode').value)}`, one())),
    );
  }
  if (caps.classify)
    await step('Classifying', async () => renderLabels(await api('/api/classify?top=5', one())));
  const pair = pairForm();
  if (pair && caps.localize)
    await step('Localising the sound', async () => renderHeat(await api('/api/localize', pairForm())));
  if (pair && caps.reconstruct) {
    const ratio = Math.max(0.05, Math.min(0.95, Number($('opt-ratio').value) || 0.75));
    await step('Reconstructing', async () =>
      renderReconstruction(await api(`/api/reconstruct?ratio=${ratio}`, pairForm())),
    );
  }
  if (errors.length) setStatus(errors.join(' · '), 'error');
  else
    setStatus(
      pair
        ? 'Done.'
        : 'Done. Add an image with an audio file, or use a video, for the heat map and the reconstruction.',
    );
  state.running = false;
  $('run').disabled = false;
}

function accept(which, file) {
  if (!file) return;
  state[which] = file;
  $(which === 'main' ? 'name-main' : 'name-second').textContent = file.name;
  showPreview();
  run();
}

function wireDrop(which) {
  const zone = $(which === 'main' ? 'drop-main' : 'drop-second');
  const input = $(which === 'main' ? 'file-main' : 'file-second');
  input.addEventListener('change', () => accept(which, input.files && input.files[0]));
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    accept(which, e.dataTransfer && e.dataTransfer.files[0]);
  });
}

document.addEventListener('DOMContentLoaded', () => {
  wireDrop('main');
  wireDrop('second');
  $('run').addEventListener('click', run);
  loadInfo();
});
