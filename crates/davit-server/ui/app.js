// davit's web interface. Everything it shows or changes goes through davit's own WebDAV
// methods (PROPFIND, GET, PUT, MKCOL, MOVE, COPY, DELETE, UNLOCK; `?zip` for a folder's
// download), so it can do nothing a WebDAV client could not, with the same permissions and
// locks. Served from the binary under /.davit/ui/
// with a Content-Security-Policy that allows no inline script: nothing here builds markup
// from strings; names always go in as text (textContent), never as HTML.
'use strict';

(() => {
  const DAV = 'DAV:';
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';

  // Rows rendered before the first paint, then per animation frame: a directory of 10,000
  // entries shows its first screen at once and the rest without blocking input.
  const FIRST_CHUNK = 150;
  const CHUNK = 1500;
  const UPLOAD_CONCURRENCY = 3;

  const timing = { start: performance.now() };
  // Read by the browser test (tests/browser): how long listing and rendering took.
  window.davitUi = { timing, loads: 0, renders: 0, ready: false };

  // The collection's path, percent-encoded as the browser has it, always ending in '/'.
  let base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
  if (base !== location.pathname) history.replaceState(null, '', base + location.search);

  const state = {
    entries: [],
    sort: { key: 'name', dir: 1 },
    filter: '',
    generation: 0,
  };

  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  const dateFormat = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });

  // ------------------------------------------------------------------ names and paths

  function decode(segment) {
    try {
      return decodeURIComponent(segment);
    } catch (_) {
      return segment;
    }
  }

  /** The decoded path of a percent-encoded one ('/a%20b/' -> '/a b/'). */
  function decodePath(path) {
    return path.split('/').map(decode).join('/');
  }

  /** A decoded folder path typed by a user, as an encoded path ending in '/'. */
  function encodeFolder(path) {
    const parts = path.split('/').filter((s) => s !== '' && s !== '.');
    if (parts.some((s) => s === '..')) return null;
    const enc = parts.map(encodeURIComponent).join('/');
    return enc === '' ? '/' : '/' + enc + '/';
  }

  /** Why a name cannot be used, or '' when it can. */
  function badName(name) {
    if (name === '') return 'A name is needed.';
    if (name === '.' || name === '..') return 'That name is reserved.';
    if (name.includes('/')) return 'A name cannot contain "/".';
    return '';
  }

  function destination(folder, name, dir) {
    return location.origin + folder + encodeURIComponent(name) + (dir ? '/' : '');
  }

  // ------------------------------------------------------------------ icons

  const ICON_PATHS = {
    folder: 'M3 6a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z',
    file: 'M6 2h8l5 5v13a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm7 1v5h5',
    text: 'M6 2h8l5 5v13a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm7 1v5h5M8 12h8M8 16h8M8 8h3',
    image: 'M4 4h16a1 1 0 0 1 1 1v14a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1zm0 13l5-5 4 4 3-3 4 4M15.5 8.5a1.5 1.5 0 1 0 0 .01',
    audio: 'M9 18V5l11-2v13M9 18a3 3 0 1 1-3-3 3 3 0 0 1 3 3zm11-2a3 3 0 1 1-3-3 3 3 0 0 1 3 3z',
    video: 'M3 6h13v12H3zM16 10l5-3v10l-5-3',
    archive: 'M4 3h16v4H4zM5 7v13h14V7M10 11h4',
    code: 'M8 7l-5 5 5 5M16 7l5 5-5 5M14 4l-4 16',
    pdf: 'M6 2h8l5 5v13a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm7 1v5h5M8 14h2a1.5 1.5 0 0 0 0-3H8v6',
    lock: 'M6 11h12v9H6zM8 11V8a4 4 0 0 1 8 0v3',
  };
  const KINDS = {
    image: 'png jpg jpeg gif webp svg bmp ico tif tiff avif heic',
    audio: 'mp3 ogg oga flac wav m4a aac opus',
    video: 'mp4 mkv webm mov avi m4v ogv',
    archive: 'zip tar gz tgz bz2 xz zst 7z rar deb rpm iso',
    code: 'js mjs ts rs c h cc cpp py rb go java sh json xml html css toml yaml yml sql php',
    pdf: 'pdf',
    text: 'txt md rst csv log ini conf cfg',
  };
  const kindOfExt = new Map();
  for (const [kind, exts] of Object.entries(KINDS)) {
    for (const e of exts.split(' ')) kindOfExt.set(e, kind);
  }
  const iconTemplates = new Map();

  function icon(kind) {
    let t = iconTemplates.get(kind);
    if (!t) {
      t = document.createElementNS(SVG, 'svg');
      t.setAttribute('viewBox', '0 0 24 24');
      t.setAttribute('class', 'icon icon-' + kind);
      t.setAttribute('aria-hidden', 'true');
      const p = document.createElementNS(SVG, 'path');
      p.setAttribute('d', ICON_PATHS[kind]);
      t.appendChild(p);
      iconTemplates.set(kind, t);
    }
    return t.cloneNode(true);
  }

  function kindOf(entry) {
    if (entry.dir) return 'folder';
    const dot = entry.name.lastIndexOf('.');
    if (dot <= 0) return 'file';
    return kindOfExt.get(entry.name.slice(dot + 1).toLowerCase()) || 'file';
  }

  const KIND_LABEL = {
    folder: 'Folder', file: 'File', text: 'Text', image: 'Image', audio: 'Audio',
    video: 'Video', archive: 'Archive', code: 'Source', pdf: 'PDF',
  };

  // ------------------------------------------------------------------ messages

  const REASONS = {
    0: 'the server could not be reached',
    400: 'the server refused the request (400 Bad Request)',
    401: 'not logged in (401 Unauthorized)',
    403: 'not allowed (403 Forbidden)',
    404: 'not found (404): it may have been moved or deleted',
    405: 'not allowed here (405 Method Not Allowed)',
    408: 'the upload was too slow (408 Request Timeout)',
    409: 'the folder it goes into does not exist (409 Conflict)',
    412: 'something with that name already exists (412 Precondition Failed)',
    413: 'too large for the server (413 Content Too Large)',
    415: 'not accepted by the server (415 Unsupported Media Type)',
    423: 'locked (423 Locked): someone else holds a lock on it',
    424: 'not done because a related operation failed (424 Failed Dependency)',
    429: 'too many attempts, wait a minute (429 Too Many Requests)',
    502: 'the destination is on another server (502 Bad Gateway)',
    503: 'the server is busy, try again (503 Service Unavailable)',
    507: 'not enough space: quota reached or disk full (507 Insufficient Storage)',
  };

  function reason(status) {
    return REASONS[status] || `failed (HTTP ${status})`;
  }

  function say(text, isError) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('error', !!isError);
  }

  // ------------------------------------------------------------------ WebDAV

  const PROPFIND_BODY =
    '<?xml version="1.0" encoding="utf-8"?>' +
    '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/>' +
    '<D:getlastmodified/><D:lockdiscovery/></D:prop></D:propfind>';
  const PRIVILEGES_BODY =
    '<?xml version="1.0" encoding="utf-8"?>' +
    '<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-privilege-set/></D:prop></D:propfind>';
  // Files the page offers to edit in place: text it can show whole.
  const EDIT_MAX = 2 * 1024 * 1024;
  // What a text preview shows of a file.
  const PREVIEW_TEXT_MAX = 256 * 1024;

  async function dav(method, url, headers, body) {
    let resp;
    try {
      resp = await fetch(url, {
        method, headers: headers || {}, body, credentials: 'same-origin', cache: 'no-store',
      });
    } catch (_) {
      return { status: 0, text: '', etag: null };
    }
    let text = '';
    try {
      text = await resp.text();
    } catch (_) {
      return { status: 0, text: '', etag: null };
    }
    return { status: resp.status, text, etag: resp.headers.get('ETag') };
  }

  function parseXml(text) {
    const doc = new DOMParser().parseFromString(text, 'application/xml');
    return doc.getElementsByTagNameNS('*', 'parsererror').length ? null : doc;
  }

  function child(el, name) {
    for (let c = el.firstElementChild; c; c = c.nextElementSibling) {
      if (c.localName === name && c.namespaceURI === DAV) return c;
    }
    return null;
  }

  function statusOf(line) {
    const m = /^\S+\s+(\d{3})/.exec((line || '').trim());
    return m ? Number(m[1]) : 0;
  }

  /** Entries of a Depth 1 PROPFIND answer, the collection itself left out. */
  function entriesOf(doc) {
    const out = [];
    const self = decodePath(base);
    const responses = doc.getElementsByTagNameNS(DAV, 'response');
    for (let i = 0; i < responses.length; i++) {
      const r = responses[i];
      const hrefEl = child(r, 'href');
      if (!hrefEl) continue;
      const href = new URL(hrefEl.textContent.trim(), location.href).pathname;
      if (decodePath(href) === self) continue;
      const e = { href, name: '', dir: false, size: -1, modified: 0, row: null };
      for (let ps = r.firstElementChild; ps; ps = ps.nextElementSibling) {
        if (ps.localName !== 'propstat' || ps.namespaceURI !== DAV) continue;
        if (statusOf(child(ps, 'status') && child(ps, 'status').textContent) !== 200) continue;
        const prop = child(ps, 'prop');
        if (!prop) continue;
        const rt = child(prop, 'resourcetype');
        if (rt && child(rt, 'collection')) e.dir = true;
        const len = child(prop, 'getcontentlength');
        if (len) e.size = Number(len.textContent);
        const lm = child(prop, 'getlastmodified');
        if (lm) e.modified = Date.parse(lm.textContent) || 0;
        const ld = child(prop, 'lockdiscovery');
        const al = ld && child(ld, 'activelock');
        if (al) {
          const tok = child(al, 'locktoken');
          const href = tok && child(tok, 'href');
          const owner = child(al, 'owner');
          e.lock = {
            token: href ? href.textContent.trim() : '',
            owner: owner ? owner.textContent.trim() : '',
          };
        }
      }
      finish(e);
      out.push(e);
    }
    return out;
  }

  function unescapeXml(s) {
    if (!s.includes('&')) return s;
    return s.replace(/&(lt|gt|amp|quot|apos|#x[0-9a-fA-F]+|#[0-9]+);/g, (_, e) => {
      switch (e) {
        case 'lt': return '<';
        case 'gt': return '>';
        case 'amp': return '&';
        case 'quot': return '"';
        case 'apos': return "'";
        default:
          return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1)));
      }
    });
  }

  /** The text between `open` and `close` in `s`, or null. */
  function between(s, open, close) {
    const a = s.indexOf(open);
    if (a < 0) return null;
    const b = s.indexOf(close, a + open.length);
    return b < 0 ? null : s.slice(a + open.length, b);
  }

  /**
   * The prefix (with its colon) that the root element of a 207 binds to DAV:, as davit writes
   * it (`<D:multistatus xmlns:D="DAV:">`); null for anything else.
   */
  function davPrefix(text) {
    const m = /<(?:([A-Za-z_][\w.-]*):)?multistatus\b[^>]*>/.exec(text.slice(0, 4096));
    if (!m) return null;
    const decl = m[1] ? `xmlns:${m[1]}="DAV:"` : 'xmlns="DAV:"';
    return m[0].includes(decl) ? (m[1] ? m[1] + ':' : '') : null;
  }

  /**
   * Entries of davit's own 207 answer read by scanning the text: several times faster than
   * building a DOM of it (10,000 members: about 50 ms against 350). Elements are written
   * without attributes and DAV: bound to one prefix on the root; for any other form, or if
   * the scan finds nothing, `entriesOf` reads the answer through DOMParser instead.
   */
  function entriesScanned(text, P) {
    const out = [];
    const self = decodePath(base);
    const open = `<${P}response>`;
    const close = `</${P}response>`;
    const psOpen = `<${P}propstat>`;
    const psClose = `</${P}propstat>`;
    let i = 0;
    while ((i = text.indexOf(open, i)) !== -1) {
      const end = text.indexOf(close, i);
      if (end < 0) return null;
      const r = text.slice(i + open.length, end);
      i = end + close.length;
      const rawHref = between(r, `<${P}href>`, `</${P}href>`);
      if (rawHref === null) return null;
      const href = new URL(unescapeXml(rawHref.trim()), location.href).pathname;
      if (decodePath(href) === self) continue;
      const e = { href, name: '', dir: false, size: -1, modified: 0, row: null };
      let j = 0;
      while ((j = r.indexOf(psOpen, j)) !== -1) {
        const pe = r.indexOf(psClose, j);
        if (pe < 0) return null;
        const ps = r.slice(j, pe);
        j = pe;
        if (statusOf(between(ps, `<${P}status>`, `</${P}status>`)) !== 200) continue;
        if (ps.includes(`<${P}collection/>`)) e.dir = true;
        const len = between(ps, `<${P}getcontentlength>`, `</${P}getcontentlength>`);
        if (len !== null) e.size = Number(len);
        const lm = between(ps, `<${P}getlastmodified>`, `</${P}getlastmodified>`);
        if (lm !== null) e.modified = Date.parse(lm) || 0;
        const al = between(ps, `<${P}activelock>`, `</${P}activelock>`);
        if (al !== null) {
          const tok = between(al, `<${P}locktoken>`, `</${P}locktoken>`);
          const href = tok === null ? null : between(tok, `<${P}href>`, `</${P}href>`);
          // The owner element may carry namespace declarations of the client's XML.
          const esc = P.replace(/[.\-]/g, '\\$&');
          const m = new RegExp(`<${esc}owner(?:\\s[^>]*)?>([\\s\\S]*?)</${esc}owner>`).exec(al);
          const owner = m ? m[1] : null;
          e.lock = {
            token: href === null ? '' : unescapeXml(href.trim()),
            // The owner is whatever XML the locking client sent: its text, tags left out.
            owner: owner === null ? '' : unescapeXml(owner.replace(/<[^>]*>/g, ' ')).replace(/\s+/g, ' ').trim(),
          };
        }
      }
      finish(e);
      out.push(e);
    }
    return out;
  }

  function finish(e) {
    const segs = e.href.split('/').filter((s) => s !== '');
    e.name = decode(segs[segs.length - 1] || '');
    if (e.dir && !e.href.endsWith('/')) e.href += '/';
    e.kind = kindOf(e);
    e.key = e.name.toLowerCase();
  }

  /** Failed members of a 207 answer to DELETE, COPY or MOVE, as "name: reason". */
  function failures(text) {
    const doc = parseXml(text);
    if (!doc) return ['the server sent an answer that could not be read'];
    const out = [];
    const responses = doc.getElementsByTagNameNS(DAV, 'response');
    for (let i = 0; i < responses.length; i++) {
      const href = child(responses[i], 'href');
      const st = child(responses[i], 'status');
      const code = statusOf(st && st.textContent);
      if (code >= 300 || code === 0) {
        out.push(`${decodePath(href ? href.textContent.trim() : '?')}: ${reason(code)}`);
      }
    }
    return out;
  }

  /** The members a 207 lists (the collection itself left out), or null if unreadable. */
  function entriesIn(text) {
    const prefix = davPrefix(text);
    const entries = prefix === null ? null : entriesScanned(text, prefix);
    if (entries !== null && !(entries.length === 0 && text.includes('response'))) return entries;
    const doc = parseXml(text);
    return doc ? entriesOf(doc) : null;
  }

  function xmlText(s) {
    return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  }

  // At most this many matches are asked of a search (the server ends with a 507 past it).
  const SEARCH_MAX = 1000;

  /**
   * Names containing `term` anywhere below this folder, found by the server (SEARCH,
   * RFC 5323 basicsearch) and shown with their path from here.
   */
  async function searchBelow(term) {
    const pattern = '%' + term.replace(/[\\%_]/g, '\\$&') + '%';
    const body = '<?xml version="1.0" encoding="utf-8"?>' +
      '<D:searchrequest xmlns:D="DAV:"><D:basicsearch>' +
      '<D:select><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/>' +
      '<D:lockdiscovery/></D:prop></D:select>' +
      `<D:from><D:scope><D:href>${xmlText(base)}</D:href><D:depth>infinity</D:depth></D:scope></D:from>` +
      `<D:where><D:like><D:prop><D:displayname/></D:prop><D:literal>${xmlText(pattern)}</D:literal></D:like></D:where>` +
      `<D:limit><D:nresults>${SEARCH_MAX}</D:nresults></D:limit>` +
      '</D:basicsearch></D:searchrequest>';
    say(`Searching for “${term}”…`);
    const r = await dav('SEARCH', base, { 'Content-Type': 'application/xml; charset=utf-8' }, body);
    if (r.status !== 207) {
      say(`Search failed: ${reason(r.status)}`, true);
      return;
    }
    const entries = entriesIn(r.text);
    if (!entries) {
      say('Search failed: the answer could not be read.', true);
      return;
    }
    const here = decodePath(base);
    for (const e of entries) {
      const full = decodePath(e.href).replace(/\/$/, '');
      e.display = full.startsWith(here) ? full.slice(here.length) : full;
    }
    state.entries = entries;
    state.search = term;
    state.filter = '';
    $('filter').value = '';
    document.body.dataset.search = term;
    window.davitUi.searches = (window.davitUi.searches || 0) + 1;
    render();
    const cut = r.text.includes('number-of-matches-within-limits');
    say(`${entries.length}${cut ? '+' : ''} found for “${term}” below this folder` +
      (cut ? ` (the first ${SEARCH_MAX})` : '') + '. Escape goes back to the folder.');
  }

  async function load() {
    const t0 = performance.now();
    say('Loading…');
    const r = await dav('PROPFIND', base, {
      Depth: '1',
      'Content-Type': 'application/xml; charset=utf-8',
      Prefer: 'return=minimal',
    }, PROPFIND_BODY);
    timing.fetched = performance.now();
    timing.fetchMs = timing.fetched - t0;
    if (r.status !== 207) {
      say(`Could not list this folder: ${reason(r.status)}`, true);
      return;
    }
    const entries = entriesIn(r.text);
    if (!entries) {
      say('Could not list this folder: the answer could not be read.', true);
      return;
    }
    state.entries = entries;
    state.search = null;
    document.body.removeAttribute('data-search');
    timing.parsed = performance.now();
    timing.parseMs = timing.parsed - timing.fetched;
    window.davitUi.loads++;
    say('');
    render();
  }

  // ------------------------------------------------------------------ listing

  function formatSize(n) {
    if (n < 0) return '';
    if (n < 1024) return `${n} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let v = n;
    let u = -1;
    do {
      v /= 1024;
      u++;
    } while (v >= 1024 && u < units.length - 1);
    return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
  }

  function compare(a, b) {
    if (a.dir !== b.dir) return a.dir ? -1 : 1;
    const { key, dir } = state.sort;
    let c = 0;
    if (key === 'size') c = a.size - b.size;
    else if (key === 'modified') c = a.modified - b.modified;
    if (c === 0) c = collator.compare(a.name, b.name);
    return c * dir;
  }

  function cell(cls) {
    const c = document.createElement('span');
    c.className = cls;
    c.setAttribute('role', 'cell');
    return c;
  }

  function rowOf(e) {
    if (e.row) return e.row;
    const row = document.createElement('div');
    row.className = 'row';
    row.setAttribute('role', 'row');
    const cIcon = cell('c-icon');
    cIcon.title = KIND_LABEL[e.kind];
    cIcon.appendChild(icon(e.kind));
    const cName = cell('c-name');
    const a = document.createElement('a');
    a.href = e.href;
    a.textContent = e.display || e.name;
    cName.appendChild(a);
    if (e.lock) {
      const l = document.createElement('span');
      l.className = 'lock';
      l.title = e.lock.owner ? `Locked by ${e.lock.owner}` : 'Locked';
      l.appendChild(icon('lock'));
      const t = document.createElement('span');
      t.className = 'lock-text';
      t.textContent = e.lock.owner ? `locked by ${e.lock.owner}` : 'locked';
      l.appendChild(t);
      cName.appendChild(l);
    }
    const cSize = cell('c-size');
    cSize.textContent = e.dir ? '—' : formatSize(e.size);
    if (!e.dir && e.size >= 0) cSize.title = `${e.size} bytes`;
    const cDate = cell('c-date');
    if (e.modified) cDate.textContent = dateFormat.format(e.modified);
    const cAct = cell('c-act');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'more';
    b.textContent = '⋯';
    b.setAttribute('aria-label', `Actions for ${e.name}`);
    b.dataset.act = '1';
    cAct.appendChild(b);
    row.append(cIcon, cName, cSize, cDate, cAct);
    e.row = row;
    row.davitEntry = e;
    return row;
  }

  function visible() {
    const f = state.filter;
    const list = f ? state.entries.filter((e) => e.key.includes(f)) : state.entries.slice();
    list.sort(compare);
    return list;
  }

  /** Replaces the rows: the first ones at once, the rest one chunk per animation frame. */
  function render() {
    const generation = ++state.generation;
    const rows = visible();
    const tbody = $('rows');
    tbody.textContent = '';
    $('empty').hidden = state.entries.length !== 0;
    if (state.filter && rows.length === 0 && state.entries.length) {
      say('No name matches the filter.');
    } else if (state.filter) {
      say(`${rows.length} of ${state.entries.length} shown`);
    }
    window.davitUi.ready = false;
    let i = 0;
    const step = () => {
      if (generation !== state.generation) return;
      const end = Math.min(rows.length, i + (i === 0 ? FIRST_CHUNK : CHUNK));
      const frag = document.createDocumentFragment();
      for (; i < end; i++) frag.appendChild(rowOf(rows[i]));
      tbody.appendChild(frag);
      if (i === end && timing.firstRows === undefined) timing.firstRows = performance.now();
      if (i < rows.length) {
        requestAnimationFrame(step);
      } else {
        timing.rendered = performance.now();
        timing.count = rows.length;
        window.davitUi.renders++;
        window.davitUi.ready = true;
        document.documentElement.dataset.rows = String(rows.length);
      }
    };
    step();
  }

  function setSort(key) {
    if (state.sort.key === key) state.sort.dir = -state.sort.dir;
    else state.sort = { key, dir: 1 };
    for (const b of document.querySelectorAll('button[data-sort]')) {
      const th = b.parentElement;
      th.setAttribute('aria-sort', b.dataset.sort !== key ? 'none'
        : state.sort.dir > 0 ? 'ascending' : 'descending');
    }
    render();
  }

  function breadcrumbs() {
    const nav = $('crumbs');
    nav.textContent = '';
    const segs = base.split('/').filter((s) => s !== '');
    const home = document.createElement(segs.length ? 'a' : 'span');
    home.textContent = location.host;
    home.className = 'crumb home';
    if (segs.length) home.href = '/';
    else home.setAttribute('aria-current', 'page');
    nav.appendChild(home);
    let path = '/';
    segs.forEach((s, i) => {
      path += s + '/';
      const sep = document.createElement('span');
      sep.className = 'sep';
      sep.textContent = '/';
      sep.setAttribute('aria-hidden', 'true');
      const last = i === segs.length - 1;
      const el = document.createElement(last ? 'span' : 'a');
      el.className = 'crumb';
      el.textContent = decode(s);
      if (last) el.setAttribute('aria-current', 'page');
      else el.href = path;
      nav.append(sep, el);
    });
    document.title = `${decodePath(base)} · davit`;
  }

  // ------------------------------------------------------------------ dialogs

  let pending = null;

  /**
   * A modal question. With `label` it asks for text and resolves to it (or null when
   * cancelled); without, it asks for confirmation and resolves to true or null.
   */
  function ask({ title, text = '', label = null, value = '', ok = 'OK', danger = false, check }) {
    const dlg = $('dialog');
    $('dialog-title').textContent = title;
    $('dialog-text').textContent = text;
    $('dialog-label').hidden = label === null;
    $('dialog-label-text').textContent = label || '';
    $('dialog-error').textContent = '';
    const input = $('dialog-input');
    input.value = value;
    const okButton = $('dialog-ok');
    okButton.textContent = ok;
    okButton.classList.toggle('danger', danger);
    return new Promise((resolve) => {
      pending = { resolve, label, check };
      dlg.showModal();
      if (label !== null) {
        input.focus();
        const dot = value.lastIndexOf('.');
        input.setSelectionRange(0, dot > 0 ? dot : value.length);
      } else {
        (danger ? $('dialog-cancel') : okButton).focus();
      }
    });
  }

  function settle(value) {
    const p = pending;
    pending = null;
    if ($('dialog').open) $('dialog').close();
    if (p) p.resolve(value);
  }

  function setupDialog() {
    $('dialog-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!pending) return;
      if (pending.label === null) {
        settle(true);
        return;
      }
      const v = $('dialog-input').value.trim();
      const problem = pending.check ? pending.check(v) : '';
      if (problem) {
        $('dialog-error').textContent = problem;
        return;
      }
      settle(v);
    });
    $('dialog-cancel').addEventListener('click', () => settle(null));
    $('dialog').addEventListener('close', () => settle(null));
  }

  // ------------------------------------------------------------------ actions

  let menuEntry = null;

  function openMenu(e, opener) {
    menuEntry = e;
    const m = $('menu');
    $('menu-title').textContent = e.name;
    const open = $('menu-open');
    open.href = e.href;
    const dl = $('menu-download');
    dl.href = e.dir ? e.href + '?zip' : e.href;
    dl.download = e.dir ? e.name + '.zip' : e.name;
    dl.textContent = e.dir ? 'Download zip' : 'Download';
    $('menu-preview').hidden = e.dir || !PREVIEWABLE.has(e.kind);
    $('menu-edit').hidden = e.dir || !editable(e);
    const note = $('menu-lock');
    note.hidden = !e.lock;
    note.textContent = e.lock ? (e.lock.owner ? `Locked by ${e.lock.owner}.` : 'Locked.') : '';
    $('menu-unlock').hidden = !e.lock || !e.lock.token;
    m.returnFocus = opener;
    m.showModal();
    open.focus();
  }

  function closeMenu() {
    const m = $('menu');
    if (m.open) m.close();
  }

  async function afterChange(message, r, okStatuses) {
    if (okStatuses.includes(r.status)) {
      await load();
      say(message);
      return true;
    }
    if (r.status === 207) {
      await load();
      say(`Partly done: ${failures(r.text).join('; ')}`, true);
      return false;
    }
    say(`${message.replace(/\.$/, '')} failed: ${reason(r.status)}`, true);
    return false;
  }

  async function newFolder() {
    const name = await ask({
      title: 'New folder', label: 'Name', value: '', ok: 'Create', check: badName,
    });
    if (name === null) return;
    const r = await dav('MKCOL', base + encodeURIComponent(name) + '/');
    if (r.status === 405) {
      say(`Could not create “${name}”: something with that name already exists.`, true);
      return;
    }
    await afterChange(`Created folder “${name}”.`, r, [201]);
  }

  /** The encoded path of the folder holding `e` (ending in '/'). */
  function folderOf(e) {
    const path = e.href.endsWith('/') ? e.href.slice(0, -1) : e.href;
    return path.slice(0, path.lastIndexOf('/') + 1);
  }

  async function rename(e) {
    const name = await ask({
      title: `Rename “${e.name}”`, label: 'New name', value: e.name, ok: 'Rename', check: badName,
    });
    if (name === null || name === e.name) return;
    const r = await dav('MOVE', e.href, {
      Destination: destination(folderOf(e), name, e.dir), Overwrite: 'F',
    });
    await afterChange(`Renamed “${e.name}” to “${name}”.`, r, [201, 204]);
  }

  async function transfer(e, method) {
    const verb = method === 'MOVE' ? 'Move' : 'Copy';
    const check = (v) => (encodeFolder(v) === null ? 'A folder path without “..” is needed.' : '');
    const folder = await ask({
      title: `${verb} “${e.name}”`,
      text: 'Into which folder? A path from the top, like /docs/2024/.',
      label: 'Folder',
      value: decodePath(base),
      ok: verb,
      check,
    });
    if (folder === null) return;
    const target = encodeFolder(folder);
    const headers = { Destination: destination(target, e.name, e.dir), Overwrite: 'F' };
    if (method === 'COPY' && e.dir) headers.Depth = 'infinity';
    const r = await dav(method, e.href, headers);
    const done = method === 'MOVE' ? 'Moved' : 'Copied';
    await afterChange(`${done} “${e.name}” to ${decodePath(target)}.`, r, [201, 204]);
  }

  async function remove(e) {
    const yes = await ask({
      title: `Delete “${e.name}”?`,
      text: e.dir ? 'The folder and everything in it will be deleted.' : 'The file will be deleted.',
      ok: 'Delete',
      danger: true,
    });
    if (!yes) return;
    const r = await dav('DELETE', e.href);
    await afterChange(`Deleted “${e.name}”.`, r, [200, 204]);
  }

  const PREVIEWABLE = new Set(['image', 'audio', 'video', 'pdf', 'text', 'code']);

  function editable(e) {
    return (e.kind === 'text' || e.kind === 'code') && e.size >= 0 && e.size <= EDIT_MAX;
  }

  async function unlock(e) {
    const r = await dav('UNLOCK', e.href, { 'Lock-Token': `<${e.lock.token}>` });
    if (r.status === 403) {
      say(`Could not release the lock on “${e.name}”: only whoever took it may (403 Forbidden).`, true);
      return;
    }
    await afterChange(`Released the lock on “${e.name}”.`, r, [204]);
  }

  // The text being edited: its entry and the ETag it was read at.
  let editing = null;

  async function edit(e) {
    const r = await dav('GET', e.href);
    if (r.status !== 200) {
      say(`Could not open “${e.name}”: ${reason(r.status)}`, true);
      return;
    }
    editing = { e, etag: r.etag };
    $('editor-title').textContent = `Edit “${e.name}”`;
    $('editor-error').textContent = '';
    const area = $('editor-text');
    area.value = r.text;
    $('editor').showModal();
    area.focus();
    area.setSelectionRange(0, 0);
  }

  async function saveEdit() {
    if (!editing) return;
    const { e, etag } = editing;
    // Only over the version that was opened: a change made meanwhile is not overwritten.
    const headers = { 'Content-Type': 'text/plain; charset=utf-8' };
    if (etag) headers['If-Match'] = etag;
    const r = await dav('PUT', e.href, headers, $('editor-text').value);
    if (r.status === 412) {
      $('editor-error').textContent =
        'It was changed by someone else since you opened it (412). Copy your text, close and open it again.';
      return;
    }
    if (r.status < 200 || r.status >= 300) {
      $('editor-error').textContent = `Not saved: ${reason(r.status)}`;
      return;
    }
    editing = null;
    $('editor').close();
    await load();
    say(`Saved “${e.name}”.`);
  }

  async function preview(e) {
    const body = $('preview-body');
    body.textContent = '';
    $('preview-title').textContent = e.name;
    let el;
    if (e.kind === 'image') {
      el = document.createElement('img');
      el.alt = e.name;
      el.src = e.href;
    } else if (e.kind === 'audio' || e.kind === 'video') {
      el = document.createElement(e.kind);
      el.controls = true;
      el.preload = 'metadata';
      el.src = e.href;
    } else if (e.kind === 'pdf') {
      el = document.createElement('iframe');
      el.title = e.name;
      el.src = e.href;
    } else {
      el = document.createElement('pre');
      el.className = 'preview-text';
      el.textContent = 'Loading…';
      const r = await dav('GET', e.href, { Range: `bytes=0-${PREVIEW_TEXT_MAX - 1}` });
      if (r.status === 200 || r.status === 206) {
        el.textContent = r.text + (e.size > PREVIEW_TEXT_MAX ? '\n…' : '');
      } else {
        el.textContent = `Could not read it: ${reason(r.status)}`;
      }
    }
    body.appendChild(el);
    const dlg = $('preview');
    if (!dlg.open) dlg.showModal();
    $('preview-close').focus();
  }

  function closePreview() {
    const dlg = $('preview');
    // Stops audio and video and lets go of the image.
    $('preview-body').textContent = '';
    if (dlg.open) dlg.close();
  }

  /** What the user may do here, from `DAV:current-user-privilege-set` (RFC 3744). */
  async function loadPrivileges() {
    const r = await dav('PROPFIND', base, {
      Depth: '0', 'Content-Type': 'application/xml; charset=utf-8',
    }, PRIVILEGES_BODY);
    const doc = r.status === 207 ? parseXml(r.text) : null;
    const set = doc && doc.getElementsByTagNameNS(DAV, 'current-user-privilege-set')[0];
    if (!set) return; // not reported: show everything, the server still decides
    const names = new Set();
    for (const p of set.getElementsByTagNameNS(DAV, 'privilege')) {
      for (let c = p.firstElementChild; c; c = c.nextElementSibling) names.add(c.localName);
    }
    const writable = names.has('all') || names.has('write') || names.has('bind');
    if (writable) delete document.body.dataset.readonly;
    else document.body.dataset.readonly = '1';
    window.davitUi.writable = writable;
  }

  // ------------------------------------------------------------------ uploads

  const uploads = { queue: [], active: 0, items: [] };

  function summarize() {
    let total = 0;
    let loaded = 0;
    let done = 0;
    let failed = 0;
    for (const it of uploads.items) {
      total += it.size;
      loaded += it.state === 'done' ? it.size : it.loaded;
      if (it.state === 'done') done++;
      if (it.state === 'failed') failed++;
    }
    const n = uploads.items.length;
    const bar = $('uploads-total');
    bar.max = Math.max(total, 1);
    bar.value = total ? loaded : (done + failed === n ? 1 : 0);
    const finished = done + failed === n;
    let text;
    if (!finished) {
      const pct = total ? Math.floor((loaded / total) * 100) : 0;
      text = `Uploading ${n - done - failed} of ${n} files · ${pct}%`;
    } else {
      text = `${done} of ${n} file${n === 1 ? '' : 's'} uploaded`;
      if (failed) text += `, ${failed} failed`;
    }
    $('uploads-summary').textContent = text;
    $('uploads').dataset.state = finished ? (failed ? 'failed' : 'done') : 'running';
  }

  function itemView(it) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'u-name';
    name.textContent = it.name;
    const bar = document.createElement('progress');
    bar.max = Math.max(it.size, 1);
    bar.value = 0;
    bar.setAttribute('aria-label', `Upload of ${it.name}`);
    const msg = document.createElement('span');
    msg.className = 'u-msg';
    msg.textContent = 'waiting';
    li.append(name, bar, msg);
    it.li = li;
    it.bar = bar;
    it.msg = msg;
    return li;
  }

  function finishItem(it, status) {
    uploads.active--;
    if (status >= 200 && status < 300) {
      it.state = 'done';
      it.bar.value = it.bar.max;
      it.msg.textContent = 'done';
      it.li.className = 'ok';
    } else {
      it.state = 'failed';
      it.msg.textContent = reason(status);
      it.li.className = 'failed';
    }
    summarize();
    pump();
  }

  // Files from this size on go up resumably (see `resumable`); smaller ones in one PUT.
  const RESUMABLE_MIN = 8 * 1024 * 1024;
  // Bytes per append: a broken connection costs at most this much again.
  const APPEND_CHUNK = 16 * 1024 * 1024;
  // How long an interrupted upload keeps trying to reach the server before it gives up (it
  // can still be resumed later: choose the same file again).
  const RETRY_FOR_MS = 10 * 60 * 1000;

  function showProgress(it, loaded) {
    it.loaded = loaded;
    it.bar.value = loaded;
    it.msg.textContent = `${Math.floor((loaded / Math.max(it.size, 1)) * 100)}%`;
    summarize();
  }

  /** One XHR (it reports upload progress, fetch does not): resolves to { status, headers }. */
  function send(method, url, headers, body, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      if (onProgress) xhr.upload.addEventListener('progress', (ev) => onProgress(ev.loaded));
      const done = () => resolve({ status: xhr.status, header: (n) => xhr.getResponseHeader(n) });
      xhr.addEventListener('load', done);
      xhr.addEventListener('error', () => resolve({ status: 0, header: () => null }));
      xhr.addEventListener('abort', () => resolve({ status: 0, header: () => null }));
      xhr.send(body === undefined ? null : body);
    });
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  /**
   * A resumable upload (davit's /.davit/uploads/, the IETF resumable-upload draft): created
   * empty with PUT `Upload-Complete: ?0`, then appended in chunks with PATCH from the offset the
   * server reports. Its URL is remembered in localStorage under the file's target, size and
   * date, so a page reload or a server restart continues where the bytes stopped.
   */
  async function startResumable(it) {
    const key = `davit-upload:${it.url}:${it.size}:${it.file.lastModified}`;
    let upload = localStorage.getItem(key);
    let offset = 0;
    let retryUntil = 0;
    for (;;) {
      if (upload) {
        const head = await send('HEAD', upload, {});
        if (head.status === 204 && head.header('Upload-Complete') === '?1') {
          // Completed already: only the answer to the last append was lost.
          localStorage.removeItem(key);
          return 201;
        }
        if (head.status === 204) {
          offset = Number(head.header('Upload-Offset')) || 0;
          if (it.resumedAt === undefined && offset > 0) {
            it.resumedAt = offset;
            window.davitUi.resumedAt = offset;
          }
          retryUntil = 0;
        } else if (head.status === 0 || head.status >= 500) {
          if (!(await waitToRetry(it))) return 0;
          continue;
        } else {
          // Gone (expired, cancelled, or not this user's): start again.
          localStorage.removeItem(key);
          upload = null;
          offset = 0;
        }
      }
      if (!upload) {
        const headers = { 'Upload-Complete': '?0', 'Upload-Length': String(it.size) };
        // The type the final PUT gets, as a one-shot upload of the file would send it.
        if (it.file.type) headers['Content-Type'] = it.file.type;
        const made = await send('PUT', it.url, headers);
        if (made.status === 0 || made.status >= 500) {
          if (!(await waitToRetry(it))) return 0;
          continue;
        }
        if (made.status !== 201 || !made.header('Location')) return made.status;
        upload = made.header('Location');
        localStorage.setItem(key, upload);
        offset = 0;
      }
      showProgress(it, offset);
      let failed = false;
      while (!failed) {
        const end = Math.min(it.size, offset + APPEND_CHUNK);
        const last = end === it.size;
        const start = offset;
        const r = await send('PATCH', upload, {
          'Upload-Offset': String(offset),
          'Upload-Complete': last ? '?1' : '?0',
          'Content-Type': 'application/partial-upload',
        }, it.file.slice(offset, end), (n) => showProgress(it, start + n));
        if (last && r.status >= 200 && r.status < 300) {
          localStorage.removeItem(key);
          return r.status;
        }
        if (r.status === 204) {
          offset = Number(r.header('Upload-Offset')) || end;
        } else if (r.status === 409 && r.header('Upload-Offset') !== null) {
          offset = Number(r.header('Upload-Offset'));
        } else if (r.status === 0 || r.status >= 500 || r.status === 409) {
          // 409 without an offset: the server is still settling an append that broke.
          failed = true; // ask the server where it stands, then go on from there
        } else {
          return r.status;
        }
      }
      if (!(await waitToRetry(it))) return 0;
    }

    async function waitToRetry(item) {
      if (!retryUntil) retryUntil = Date.now() + RETRY_FOR_MS;
      if (Date.now() > retryUntil) return false;
      item.msg.textContent = 'connection lost, retrying…';
      item.li.className = 'retrying';
      window.davitUi.retries = (window.davitUi.retries || 0) + 1;
      await sleep(1000);
      item.li.className = '';
      return true;
    }
  }

  function start(it) {
    uploads.active++;
    it.state = 'running';
    it.msg.textContent = '0%';
    if (it.size >= RESUMABLE_MIN) {
      startResumable(it).then((status) => finishItem(it, status));
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', it.url);
    xhr.upload.addEventListener('progress', (ev) => {
      it.loaded = ev.loaded;
      it.bar.value = ev.loaded;
      it.msg.textContent = `${Math.floor((ev.loaded / Math.max(ev.total, 1)) * 100)}%`;
      summarize();
    });
    xhr.addEventListener('load', () => finishItem(it, xhr.status));
    xhr.addEventListener('error', () => finishItem(it, 0));
    xhr.addEventListener('abort', () => finishItem(it, 0));
    xhr.send(it.file);
  }

  function pump() {
    while (uploads.active < UPLOAD_CONCURRENCY && uploads.queue.length) start(uploads.queue.shift());
    if (uploads.active === 0 && uploads.queue.length === 0 && uploads.items.length) {
      load();
    }
  }

  /** A relative path ('a/b c/d.txt') as an encoded URL path below the collection. */
  function encodeRel(rel) {
    return base + rel.split('/').map(encodeURIComponent).join('/');
  }

  /**
   * Uploads files, each `{ file, rel }` with its path relative to this folder ('x.txt', or
   * 'photos/2024/x.jpg' for a folder's upload), after creating the folders they go into and
   * the (possibly empty) folders in `dirs`, parents first. A folder that exists already is
   * used as it is.
   */
  async function upload(files, dirs) {
    if (document.body.dataset.readonly) {
      say('You may not upload into this folder.', true);
      return;
    }
    const list = $('uploads-list');
    $('uploads').hidden = false;
    const fresh = [];
    for (const { file, rel } of files) {
      const it = {
        file, name: rel, size: file.size, loaded: 0, state: 'waiting', url: encodeRel(rel),
      };
      uploads.items.push(it);
      fresh.push(it);
      list.appendChild(itemView(it));
    }
    summarize();
    const needed = new Set(dirs || []);
    for (const { rel } of files) {
      const segs = rel.split('/');
      for (let i = 1; i < segs.length; i++) needed.add(segs.slice(0, i).join('/'));
    }
    const ordered = [...needed].sort((a, b) => a.split('/').length - b.split('/').length || collator.compare(a, b));
    const failedDirs = new Map();
    for (const d of ordered) {
      const parent = d.includes('/') ? d.slice(0, d.lastIndexOf('/')) : '';
      if (failedDirs.has(parent)) {
        failedDirs.set(d, failedDirs.get(parent));
        continue;
      }
      say(`Creating folder “${d}”…`);
      const r = await dav('MKCOL', encodeRel(d) + '/');
      // 405: something is there already; a folder is used as it is, a file makes the
      // uploads into it fail with their own reason.
      if (r.status !== 201 && r.status !== 405) failedDirs.set(d, r.status);
    }
    if (ordered.length) say('');
    for (const it of fresh) {
      const dir = it.name.includes('/') ? it.name.slice(0, it.name.lastIndexOf('/')) : '';
      if (failedDirs.has(dir)) {
        it.state = 'failed';
        it.msg.textContent = `its folder could not be created: ${reason(failedDirs.get(dir))}`;
        it.li.className = 'failed';
      } else {
        uploads.queue.push(it);
      }
    }
    summarize();
    if (!uploads.queue.length && !uploads.active) load();
    pump();
  }

  /** Files and folders of a drop, read through the entries API (folders recursively). */
  async function dropped(entries) {
    const files = [];
    const dirs = [];
    const fileOf = (entry) => new Promise((res, rej) => entry.file(res, rej));
    const walk = async (entry, prefix) => {
      if (entry.isFile) {
        files.push({ file: await fileOf(entry), rel: prefix + entry.name });
      } else if (entry.isDirectory) {
        const rel = prefix + entry.name;
        dirs.push(rel);
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
          if (!batch.length) break;
          for (const c of batch) await walk(c, rel + '/');
        }
      }
    };
    for (const e of entries) await walk(e, '');
    return { files, dirs };
  }

  function clearUploads() {
    uploads.items = uploads.items.filter((it) => it.state === 'running' || it.state === 'waiting');
    const list = $('uploads-list');
    list.textContent = '';
    for (const it of uploads.items) list.appendChild(it.li);
    if (!uploads.items.length) $('uploads').hidden = true;
    else summarize();
  }

  function setupDrop() {
    const overlay = $('drop');
    let depth = 0;
    const hasFiles = (ev) => ev.dataTransfer && Array.from(ev.dataTransfer.types).includes('Files');
    document.addEventListener('dragenter', (ev) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      depth++;
      overlay.hidden = false;
    });
    document.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) overlay.hidden = true;
    });
    document.addEventListener('dragover', (ev) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = 'copy';
    });
    document.addEventListener('drop', (ev) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      depth = 0;
      overlay.hidden = true;
      // The entries must be taken before the handler returns: the drop's data goes away.
      const items = ev.dataTransfer.items ? Array.from(ev.dataTransfer.items) : [];
      const entries = items
        .filter((item) => item.kind === 'file' && item.webkitGetAsEntry)
        .map((item) => item.webkitGetAsEntry())
        .filter((entry) => entry);
      if (entries.length) {
        dropped(entries).then(({ files, dirs }) => {
          if (files.length || dirs.length) upload(files, dirs);
        }, () => say('Could not read what was dropped.', true));
      } else {
        const files = Array.from(ev.dataTransfer.files).map((f) => ({ file: f, rel: f.name }));
        if (files.length) upload(files, []);
      }
    });
  }

  // ------------------------------------------------------------------ wiring

  function setup() {
    breadcrumbs();
    setupDialog();
    setupDrop();
    const filter = $('filter');
    filter.addEventListener('input', () => {
      state.filter = filter.value.trim().toLowerCase();
      if (!state.filter) say('');
      render();
    });
    filter.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && filter.value.trim()) {
        ev.preventDefault();
        searchBelow(filter.value.trim());
      } else if (ev.key === 'Escape' && filter.value) {
        filter.value = '';
        state.filter = '';
        say(state.search ? `Results for “${state.search}”. Escape goes back to the folder.` : '');
        render();
      } else if (ev.key === 'Escape' && state.search) {
        load();
      }
    });
    document.addEventListener('keydown', (ev) => {
      const typing = ev.target instanceof HTMLInputElement;
      if (ev.key === '/' && !typing && !document.querySelector('dialog[open]')) {
        ev.preventDefault();
        filter.focus();
      }
    });
    for (const b of document.querySelectorAll('button[data-sort]')) {
      b.addEventListener('click', () => setSort(b.dataset.sort));
    }
    $('rows').addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-act]');
      if (!b) return;
      const row = b.closest('.row');
      if (row && row.davitEntry) openMenu(row.davitEntry, b);
    });
    const menu = $('menu');
    menu.addEventListener('close', () => {
      // Back to the row's button, unless an action has opened its own dialog meanwhile, or
      // the user has already moved on (the close event comes a task after the dialog
      // closed: a click in the filter may come first).
      const other = document.querySelector('dialog[open]');
      const lost = document.activeElement === document.body || menu.contains(document.activeElement);
      if (!other && lost && menu.returnFocus && menu.returnFocus.isConnected) menu.returnFocus.focus();
    });
    menu.addEventListener('click', (ev) => {
      if (ev.target === menu) {
        closeMenu(); // a click on the backdrop
        return;
      }
      const b = ev.target.closest('button[data-action]');
      if (!b || !menuEntry) return;
      const e = menuEntry;
      closeMenu();
      const act = b.dataset.action;
      if (act === 'rename') rename(e);
      else if (act === 'move') transfer(e, 'MOVE');
      else if (act === 'copy') transfer(e, 'COPY');
      else if (act === 'delete') remove(e);
      else if (act === 'unlock') unlock(e);
      else if (act === 'edit') edit(e);
      else if (act === 'preview') preview(e);
    });
    for (const a of [$('menu-open'), $('menu-download')]) a.addEventListener('click', closeMenu);
    $('new-folder').addEventListener('click', newFolder);
    const zip = $('download-zip');
    zip.href = base + '?zip';
    const segs = base.split('/').filter((x) => x !== '');
    zip.download = (segs.length ? decode(segs[segs.length - 1]) : location.hostname) + '.zip';
    $('editor-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      saveEdit();
    });
    $('editor-cancel').addEventListener('click', () => {
      editing = null;
      $('editor').close();
    });
    $('editor').addEventListener('close', () => {
      editing = null;
    });
    $('preview-close').addEventListener('click', closePreview);
    $('preview').addEventListener('close', closePreview);
    loadPrivileges();
    const input = $('upload');
    input.addEventListener('change', () => {
      if (input.files && input.files.length) {
        upload(Array.from(input.files).map((f) => ({ file: f, rel: f.name })), []);
      }
      input.value = '';
    });
    const folderInput = $('upload-folder');
    folderInput.addEventListener('change', () => {
      if (folderInput.files && folderInput.files.length) {
        const files = Array.from(folderInput.files).map((f) => ({
          file: f, rel: f.webkitRelativePath || f.name,
        }));
        upload(files, []);
      }
      folderInput.value = '';
    });
    $('uploads-clear').addEventListener('click', clearUploads);
    load();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', setup);
  else setup();
})();
