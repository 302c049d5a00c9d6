// davit's web interface driven in Debian's headless Chromium through playwright-core
// (scripts/browser-test.sh starts the server and runs this). Every change made through the page
// is checked against the server with an independent client (Node's fetch: PROPFIND and GET,
// bytes compared). The last line printed is "N passed, M failed".
//
// Environment: DAVIT_URL (http://127.0.0.1:PORT), DAVIT_ROOT (the served directory, for the
// 10,000-entry fixture), SCREENSHOT_DIR, CHROMIUM (default /usr/bin/chromium).

import { chromium } from 'playwright-core';
import { execFileSync, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { createHash, randomBytes as rnd } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const URL_BASE = process.env.DAVIT_URL;
const AUTH_URL = process.env.DAVIT_AUTH_URL;
const ROOT = process.env.DAVIT_ROOT;
const SHOTS = process.env.SCREENSHOT_DIR || 'target/browser-screenshots';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const XSS_NAME = '<img src=x onerror=alert(1)>.txt';
const BIG_DIR_ENTRIES = 10000;

let passed = 0;
let failed = 0;

function fail(message) {
  throw new Error(message);
}

function assertEq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) fail(`${what}: expected ${e}, got ${a}`);
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
  }
}

// ---------------------------------------------------------------- the independent client

function url(path) {
  return URL_BASE + path;
}

/** The body of GET `path` as bytes, or null on 404. */
async function getBytes(path) {
  const r = await fetch(url(path));
  if (r.status === 404) return null;
  if (r.status !== 200) fail(`GET ${path}: ${r.status}`);
  return Buffer.from(await r.arrayBuffer());
}

function unescapeXml(s) {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

/** Depth 1 PROPFIND: the members of a collection as { decoded name: isCollection }. */
async function members(path) {
  const r = await fetch(url(path), {
    method: 'PROPFIND',
    headers: { Depth: '1', 'Content-Type': 'application/xml' },
    body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>',
  });
  if (r.status !== 207) fail(`PROPFIND ${path}: ${r.status}`);
  const text = await r.text();
  const out = {};
  for (const m of text.matchAll(/<D:response>([\s\S]*?)<\/D:response>/g)) {
    const href = unescapeXml(/<D:href>([^<]*)<\/D:href>/.exec(m[1])[1]);
    const decoded = decodeURIComponent(href);
    if (decoded === decodeURIComponent(path)) continue;
    const name = decoded.replace(/\/$/, '').split('/').pop();
    out[name] = /<D:collection\s*\/>/.test(m[1]);
  }
  return out;
}

async function expectBytes(path, expected, what) {
  const got = await getBytes(path);
  if (got === null) fail(`${what}: GET ${path} is 404`);
  if (!got.equals(expected)) fail(`${what}: GET ${path} returned ${got.length} other bytes`);
}

async function expectGone(path, what) {
  const r = await fetch(url(path), { method: 'HEAD' });
  if (r.status !== 404) fail(`${what}: HEAD ${path} is ${r.status}, not 404`);
}

function enc(name) {
  return encodeURIComponent(name);
}

function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

/**
 * The members of a zip file as { name: sha256 of the content, or null for a folder }, read by
 * Python's zipfile (another implementation than davit's), which also checks every CRC.
 */
function unzipped(path) {
  const script = [
    'import hashlib, json, sys, zipfile',
    'z = zipfile.ZipFile(sys.argv[1])',
    'bad = z.testzip()',
    'assert bad is None, bad',
    'print(json.dumps({i.filename: (None if i.is_dir() else hashlib.sha256(z.read(i)).hexdigest()) for i in z.infolist()}, sort_keys=True))',
  ].join('\n');
  return JSON.parse(execFileSync('python3', ['-c', script, path]).toString());
}

function basicAuth(user) {
  return 'Basic ' + Buffer.from(`${user}:${user}-pw`).toString('base64');
}

/** Resolves once something listens on 127.0.0.1:`port` (waits up to 10 s). */
async function waitPort(port) {
  for (let i = 0; i < 200; i++) {
    const up = await new Promise((resolve) => {
      const c = connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`nothing listens on port ${port}`);
}

const PNG_1X1 = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'base64',
);

// ---------------------------------------------------------------- the page

async function waitReady(page, loadsBefore) {
  await page.waitForFunction(
    (n) => window.davitUi && window.davitUi.ready && window.davitUi.loads > n,
    loadsBefore,
    { timeout: 30000 },
  );
}

async function loads(page) {
  return page.evaluate(() => (window.davitUi ? window.davitUi.loads : 0));
}

async function rowNames(page) {
  return page.$$eval('#rows .row .c-name a', (as) => as.map((a) => a.textContent));
}

function actionsOf(page, name) {
  return page.getByRole('button', { name: `Actions for ${name}`, exact: true });
}

/** Opens the actions of `name`, picks `action`, answers the dialog with `value`. */
async function act(page, name, action, value) {
  const before = await loads(page);
  await actionsOf(page, name).click();
  await page.locator(`#menu button[data-action="${action}"]`).click();
  if (value !== undefined) await page.locator('#dialog-input').fill(value);
  await page.locator('#dialog-ok').click();
  await waitReady(page, before);
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  // Fixtures made by other clients than the page: the hostile name by curl, the big directory
  // straight on disk.
  writeFileSync(join(ROOT, 'seed.txt'), 'seed');
  execFileSync('curl', ['-sS', '-f', '-T', '-', url('/' + enc(XSS_NAME))], { input: 'xss bait' });
  mkdirSync(join(ROOT, 'big'));
  for (let i = 0; i < BIG_DIR_ENTRIES; i++) {
    writeFileSync(join(ROOT, 'big', `entry-${String(i).padStart(5, '0')}.txt`), String(i));
  }

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 }, colorScheme: 'light' });
  // Anything the CSP blocks is recorded (an init script is not itself subject to it).
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective));
  });
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', async (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss();
  });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  await check('the root page lists the collection (PROPFIND from the page)', async () => {
    await page.goto(url('/'));
    await waitReady(page, 0);
    const names = await rowNames(page);
    for (const n of ['big', 'seed.txt', XSS_NAME]) {
      if (!names.includes(n)) fail(`${n} not listed: ${JSON.stringify(names)}`);
    }
    assertEq(names[0], 'big', 'folders first');
    const resp = await page.request.get(url('/'), { headers: { Accept: 'text/html' } });
    if (!resp.headers()['content-security-policy'].includes("script-src 'self'")) fail('no CSP');
  });

  await check('a file named as markup shows as that text, and no alert fires', async () => {
    const link = page.getByRole('link', { name: XSS_NAME, exact: true });
    assertEq(await link.count(), 1, 'links with the literal name');
    assertEq(await link.textContent(), XSS_NAME, 'text of the link');
    assertEq(await page.locator('#rows img').count(), 0, 'img elements in the listing');
    await page.waitForTimeout(300);
    assertEq(dialogs, [], 'dialogs');
    await expectBytes('/' + enc(XSS_NAME), Buffer.from('xss bait'), 'the file itself');
  });

  await page.screenshot({ path: join(SHOTS, 'listing-light.png') });

  const files = [
    { name: 'alpha.txt', mimeType: 'text/plain', buffer: Buffer.from('alpha file\n') },
    { name: 'beta data.bin', mimeType: 'application/octet-stream', buffer: randomBytes(300 * 1024) },
    { name: 'gamma ü.md', mimeType: 'text/markdown', buffer: Buffer.from('# gamma ü 😀\n') },
  ];
  await check('three files uploaded through the file input, each with its progress', async () => {
    const before = await loads(page);
    await page.setInputFiles('#upload', files);
    await page.locator('#uploads[data-state="done"]').waitFor({ timeout: 30000 });
    await waitReady(page, before);
    assertEq(await page.locator('#uploads-summary').textContent(), '3 of 3 files uploaded', 'summary');
    assertEq(await page.locator('#uploads-list li.ok').count(), 3, 'items done');
    const bars = await page.$$eval('#uploads-list progress', (ps) => ps.map((p) => p.value === p.max));
    assertEq(bars, [true, true, true], 'per-file bars full');
    const names = await rowNames(page);
    for (const f of files) {
      if (!names.includes(f.name)) fail(`${f.name} not listed after upload`);
      await expectBytes('/' + enc(f.name), f.buffer, `upload of ${f.name}`);
    }
  });
  await page.screenshot({ path: join(SHOTS, 'upload-done.png') });

  await check('an upload in progress shows per-file and overall progress', async () => {
    // Slow the upload down so that the page can be seen in the middle of it.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 1024 * 1024,
    });
    const big = { name: 'slow upload.bin', mimeType: 'application/octet-stream', buffer: randomBytes(3 * 1024 * 1024) };
    const before = await loads(page);
    await page.locator('#uploads-clear').click();
    await page.setInputFiles('#upload', [big]);
    await page.waitForFunction(() => {
      const p = document.querySelector('#uploads-list progress');
      return p && p.value > p.max * 0.15;
    }, null, { timeout: 30000 });
    const running = await page.locator('#uploads').getAttribute('data-state');
    await page.screenshot({ path: join(SHOTS, 'upload-in-progress.png') });
    assertEq(running, 'running', 'state while uploading');
    const summary = await page.locator('#uploads-summary').textContent();
    if (!/^Uploading 1 of 1 files · \d+%$/.test(summary)) fail(`summary: ${summary}`);
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
    });
    await page.locator('#uploads[data-state="done"]').waitFor({ timeout: 60000 });
    await waitReady(page, before);
    await expectBytes('/' + enc(big.name), big.buffer, 'the slowed upload');
  });

  await check('an upload onto a locked file fails with its reason (423)', async () => {
    const lock = await fetch(url('/alpha.txt'), {
      method: 'LOCK',
      headers: { 'Content-Type': 'application/xml', Timeout: 'Second-600' },
      body: '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>',
    });
    assertEq(lock.status, 200, 'LOCK by another client');
    const token = lock.headers.get('lock-token');
    await page.locator('#uploads-clear').click();
    await page.setInputFiles('#upload', [{ name: 'alpha.txt', mimeType: 'text/plain', buffer: Buffer.from('clobber') }]);
    await page.locator('#uploads[data-state="failed"]').waitFor({ timeout: 30000 });
    const msg = await page.locator('#uploads-list li.failed .u-msg').textContent();
    if (!msg.includes('423')) fail(`message: ${msg}`);
    if (!msg.startsWith('locked')) fail(`message: ${msg}`);
    await expectBytes('/alpha.txt', files[0].buffer, 'the locked file is unchanged');
    const un = await fetch(url('/alpha.txt'), { method: 'UNLOCK', headers: { 'Lock-Token': token } });
    assertEq(un.status, 204, 'UNLOCK');
    await page.locator('#uploads-clear').click();
  });

  await check('a new folder (MKCOL)', async () => {
    const before = await loads(page);
    await page.locator('#new-folder').click();
    await page.locator('#dialog-input').fill('Folder one');
    await page.locator('#dialog-ok').click();
    await waitReady(page, before);
    if (!(await rowNames(page)).includes('Folder one')) fail('folder not listed');
    assertEq((await members('/'))['Folder one'], true, 'a collection on the server');
  });

  await check('rename a file (MOVE)', async () => {
    await act(page, 'alpha.txt', 'rename', 'alpha renamed.txt');
    const names = await rowNames(page);
    if (names.includes('alpha.txt') || !names.includes('alpha renamed.txt')) fail(JSON.stringify(names));
    await expectGone('/alpha.txt', 'old name');
    await expectBytes('/' + enc('alpha renamed.txt'), files[0].buffer, 'renamed');
  });

  await check('copy a file into the folder (COPY)', async () => {
    await act(page, 'beta data.bin', 'copy', '/Folder one/');
    await expectBytes('/' + enc('beta data.bin'), files[1].buffer, 'the original');
    await expectBytes('/Folder%20one/' + enc('beta data.bin'), files[1].buffer, 'the copy');
  });

  await check('move a file into the folder (MOVE)', async () => {
    await act(page, 'gamma ü.md', 'move', '/Folder one');
    if ((await rowNames(page)).includes('gamma ü.md')) fail('still listed');
    await expectGone('/' + enc('gamma ü.md'), 'moved away');
    await expectBytes('/Folder%20one/' + enc('gamma ü.md'), files[2].buffer, 'moved');
  });

  await check('delete asks first; cancel keeps the file, confirming deletes it', async () => {
    await actionsOf(page, 'alpha renamed.txt').click();
    await page.locator('#menu button[data-action="delete"]').click();
    assertEq(await page.locator('#dialog-title').textContent(), 'Delete “alpha renamed.txt”?', 'question');
    await page.locator('#dialog-cancel').click();
    await expectBytes('/' + enc('alpha renamed.txt'), files[0].buffer, 'kept after cancel');
    await act(page, 'alpha renamed.txt', 'delete');
    if ((await rowNames(page)).includes('alpha renamed.txt')) fail('still listed');
    await expectGone('/' + enc('alpha renamed.txt'), 'deleted');
  });

  await check('a failed action says why (MKCOL of an existing name)', async () => {
    await page.locator('#new-folder').click();
    await page.locator('#dialog-input').fill('Folder one');
    await page.locator('#dialog-ok').click();
    await page.locator('#status.error').waitFor();
    const text = await page.locator('#status').textContent();
    if (!text.includes('already exists')) fail(text);
  });

  await check('the server agrees with the page', async () => {
    const root = await members('/');
    const listed = await rowNames(page);
    assertEq(Object.keys(root).sort(), [...listed].sort(), 'root members');
    const inFolder = await members('/Folder%20one/');
    assertEq(Object.keys(inFolder).sort(), ['beta data.bin', 'gamma ü.md'], 'folder members');
    assertEq(Object.values(inFolder), [false, false], 'both files');
  });

  await check('into the folder by its link; breadcrumbs lead back', async () => {
    const before = await loads(page);
    await page.getByRole('link', { name: 'Folder one', exact: true }).click();
    await page.waitForURL(url('/Folder%20one/'));
    await waitReady(page, 0);
    assertEq((await rowNames(page)).sort(), ['beta data.bin', 'gamma ü.md'], 'folder listing');
    const crumbs = await page.$$eval('#crumbs .crumb', (cs) => cs.map((c) => c.textContent));
    assertEq(crumbs.slice(1), ['Folder one'], 'breadcrumbs');
    void before;
  });

  await check('download link of a file', async () => {
    await actionsOf(page, 'gamma ü.md').click();
    const dl = page.locator('#menu-download');
    assertEq(await dl.getAttribute('download'), 'gamma ü.md', 'download name');
    const [download] = await Promise.all([page.waitForEvent('download'), dl.click()]);
    const path = await download.path();
    const { readFileSync } = await import('node:fs');
    if (!readFileSync(path).equals(files[2].buffer)) fail('downloaded bytes differ');
  });

  await check('download a folder as a zip: every byte checked by Python\'s zipfile', async () => {
    await page.goto(url('/'));
    await waitReady(page, 0);
    await actionsOf(page, 'Folder one').click();
    const dl = page.locator('#menu-download');
    assertEq(await dl.textContent(), 'Download zip', 'label');
    assertEq(await dl.getAttribute('download'), 'Folder one.zip', 'download name');
    const [download] = await Promise.all([page.waitForEvent('download'), dl.click()]);
    assertEq(download.suggestedFilename(), 'Folder one.zip', 'suggested name');
    const got = unzipped(await download.path());
    assertEq(got, {
      'Folder one/': null,
      'Folder one/beta data.bin': sha256(files[1].buffer),
      'Folder one/gamma ü.md': sha256(files[2].buffer),
    }, 'members');
    // The length is known before the first byte (a progress bar for the download).
    const r = await fetch(url('/Folder%20one/?zip'));
    const body = Buffer.from(await r.arrayBuffer());
    assertEq(Number(r.headers.get('content-length')), body.length, 'Content-Length');
    assertEq(await page.locator('#download-zip').getAttribute('href'), '/?zip', 'the folder\'s own zip link');
  });

  await check('upload a whole folder: its folders made with MKCOL, its files put in them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'davit-folder-'));
    const album = join(dir, 'album ü');
    mkdirSync(join(album, 'sub', 'deeper'), { recursive: true });
    const content = { 'a.txt': Buffer.from('in the album\n'), 'sub/b.bin': rnd(200 * 1024), 'sub/deeper/c.md': Buffer.from('# c\n') };
    for (const [rel, buf] of Object.entries(content)) writeFileSync(join(album, rel), buf);
    const before = await loads(page);
    if (await page.locator('#uploads-clear').isVisible()) await page.locator('#uploads-clear').click();
    await page.setInputFiles('#upload-folder', album);
    await page.locator('#uploads[data-state="done"]').waitFor({ timeout: 30000 });
    await waitReady(page, before);
    assertEq(await page.locator('#uploads-summary').textContent(), '3 of 3 files uploaded', 'summary');
    if (!(await rowNames(page)).includes('album ü')) fail('folder not listed');
    const sorted = (o) => Object.fromEntries(Object.entries(o).sort());
    assertEq(sorted(await members('/' + enc('album ü') + '/')), { 'a.txt': false, sub: true }, 'top of the folder');
    assertEq(sorted(await members('/' + enc('album ü') + '/sub/')), { 'b.bin': false, deeper: true }, 'sub');
    for (const [rel, buf] of Object.entries(content)) {
      await expectBytes('/' + enc('album ü') + '/' + rel.split('/').map(enc).join('/'), buf, rel);
    }
    await page.locator('#uploads-clear').click();
    rmSync(dir, { recursive: true, force: true });
  });

  await check('edit a text file in place; a change made meanwhile is not overwritten', async () => {
    await actionsOf(page, 'seed.txt').click();
    await page.locator('#menu-edit').click();
    await page.locator('#editor[open]').waitFor();
    assertEq(await page.locator('#editor-text').inputValue(), 'seed', 'text loaded');
    await page.screenshot({ path: join(SHOTS, 'edit-text.png') });
    await page.locator('#editor-text').fill('seed edited\nline 2 ü\n');
    let before = await loads(page);
    await page.locator('#editor-save').click();
    await waitReady(page, before);
    assertEq(await page.locator('#editor').evaluate((d) => d.open), false, 'editor closed');
    await expectBytes('/seed.txt', Buffer.from('seed edited\nline 2 ü\n'), 'saved');
    // Someone else writes while the editor is open: saving is refused (If-Match, 412).
    await actionsOf(page, 'seed.txt').click();
    await page.locator('#menu-edit').click();
    await page.locator('#editor[open]').waitFor();
    execFileSync('curl', ['-sS', '-f', '-T', '-', url('/seed.txt')], { input: 'changed elsewhere' });
    await page.locator('#editor-text').fill('my version');
    await page.locator('#editor-save').click();
    await page.locator('#editor-error:not(:empty)').waitFor();
    const err = await page.locator('#editor-error').textContent();
    if (!err.includes('412')) fail(`message: ${err}`);
    await expectBytes('/seed.txt', Buffer.from('changed elsewhere'), 'not overwritten');
    before = await loads(page);
    await page.locator('#editor-cancel').click();
    void before;
  });

  await check('a lock shows who holds it, and the lock can be released from the page', async () => {
    const lock = await fetch(url('/seed.txt'), {
      method: 'LOCK',
      headers: { 'Content-Type': 'application/xml', Timeout: 'Second-600' },
      body: '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>Carol &amp; Co</D:owner></D:lockinfo>',
    });
    assertEq(lock.status, 200, 'LOCK by another client');
    await page.reload();
    await waitReady(page, 0);
    const row = page.locator('#rows .row', { has: page.getByRole('link', { name: 'seed.txt', exact: true }) });
    assertEq(await row.locator('.lock-text').textContent(), 'locked by Carol & Co', 'badge');
    await actionsOf(page, 'seed.txt').click();
    assertEq(await page.locator('#menu-lock').textContent(), 'Locked by Carol & Co.', 'menu note');
    await page.screenshot({ path: join(SHOTS, 'lock.png') });
    const before = await loads(page);
    await page.locator('#menu-unlock').click();
    await waitReady(page, before);
    const r = await fetch(url('/seed.txt'), {
      method: 'PROPFIND',
      headers: { Depth: '0', 'Content-Type': 'application/xml' },
      body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>',
    });
    const text = await r.text();
    if (text.includes('activelock')) fail(`still locked: ${text}`);
    assertEq(await row.locator('.lock').count(), 0, 'badge gone');
  });

  await check('previews: an image, the start of a text file, audio, and a PDF in a frame', async () => {
    execFileSync('curl', ['-sS', '-f', '-T', '-', url('/pic.png')], { input: PNG_1X1 });
    await page.reload();
    await waitReady(page, 0);
    await actionsOf(page, 'pic.png').click();
    await page.locator('#menu-preview').click();
    await page.waitForFunction(() => {
      const img = document.querySelector('#preview-body img');
      return img && img.complete && img.naturalWidth === 1;
    }, null, { timeout: 10000 });
    await page.locator('#preview-close').click();
    await actionsOf(page, 'seed.txt').click();
    await page.locator('#menu-preview').click();
    await page.locator('#preview-body pre').waitFor();
    await page.waitForFunction(() => document.querySelector('#preview-body pre').textContent !== 'Loading…');
    assertEq(await page.locator('#preview-body pre').textContent(), 'changed elsewhere', 'text preview');
    await page.keyboard.press('Escape');
    assertEq(await page.locator('#preview').evaluate((d) => d.open), false, 'closed by Escape');
    // Audio: a quarter second of a 440 Hz tone as WAV; the element reads its duration.
    const rate = 8000;
    const samples = Buffer.alloc(rate / 4 * 2);
    for (let i = 0; i < rate / 4; i++) samples.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), i * 2);
    const wav = Buffer.alloc(44);
    wav.write('RIFF', 0); wav.writeUInt32LE(36 + samples.length, 4); wav.write('WAVE', 8);
    wav.write('fmt ', 12); wav.writeUInt32LE(16, 16); wav.writeUInt16LE(1, 20); wav.writeUInt16LE(1, 22);
    wav.writeUInt32LE(rate, 24); wav.writeUInt32LE(rate * 2, 28); wav.writeUInt16LE(2, 32); wav.writeUInt16LE(16, 34);
    wav.write('data', 36); wav.writeUInt32LE(samples.length, 40);
    execFileSync('curl', ['-sS', '-f', '-T', '-', url('/tone.wav')], { input: Buffer.concat([wav, samples]) });
    // PDF: a one-page document; the page frames it (whether headless Chromium draws it is
    // its viewer's business: what is checked is that the frame fetched it as a PDF).
    const pdf = '%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj '
      + '3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n';
    execFileSync('curl', ['-sS', '-f', '-T', '-', url('/doc.pdf')], { input: pdf });
    await page.reload();
    await waitReady(page, 0);
    await actionsOf(page, 'tone.wav').click();
    await page.locator('#menu-preview').click();
    await page.waitForFunction(() => {
      const a = document.querySelector('#preview-body audio');
      return a && a.readyState >= 1 && Math.abs(a.duration - 0.25) < 0.01;
    }, null, { timeout: 10000 });
    await page.locator('#preview-close').click();
    await actionsOf(page, 'doc.pdf').click();
    const [pdfResponse] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/doc.pdf'), { timeout: 10000 }),
      page.locator('#menu-preview').click(),
    ]);
    assertEq([pdfResponse.status(), pdfResponse.headers()['content-type']], [200, 'application/pdf'], 'the framed PDF');
    assertEq(await page.locator('#preview-body iframe').getAttribute('src'), '/doc.pdf', 'frame');
    await page.locator('#preview-close').click();
  });

  await check('a stored HTML page opened from the listing runs no script (sandboxed)', async () => {
    execFileSync('curl', ['-sS', '-f', '-T', '-', url('/page.html')], {
      input: '<!DOCTYPE html><title>stored</title><script>document.title = "pwned"; alert(1)</script>',
    });
    await page.goto(url('/page.html'));
    await page.waitForTimeout(300);
    assertEq(await page.title(), 'stored', 'title after load');
    assertEq(dialogs, [], 'dialogs');
    await page.goto(url('/'));
    await waitReady(page, 0);
  });

  await check('sort by size and by name, both directions', async () => {
    await page.goto(url('/'));
    await waitReady(page, 0);
    await page.getByRole('button', { name: 'Size', exact: true }).click();
    let names = await rowNames(page);
    // seed.txt holds 'changed elsewhere' (17 bytes) since the editing check.
    const sizes = { [XSS_NAME]: 8, 'seed.txt': 17, 'beta data.bin': 300 * 1024, 'slow upload.bin': 3 << 20 };
    const files = names.filter((n) => n in sizes);
    assertEq(files, Object.keys(sizes), 'ascending by size');
    assertEq(await page.locator('[role=columnheader].c-size').getAttribute('aria-sort'), 'ascending', 'aria-sort');
    await page.getByRole('button', { name: 'Size', exact: true }).click();
    names = await rowNames(page);
    assertEq(names.filter((n) => n in sizes), Object.keys(sizes).reverse(), 'descending by size');
    await page.getByRole('button', { name: 'Name', exact: true }).click();
    names = await rowNames(page);
    assertEq(names.slice(0, 3), ['album ü', 'big', 'Folder one'], 'folders first, by name');
  });

  await check('filter as you type, Escape clears it', async () => {
    await page.keyboard.press('/');
    assertEq(await page.evaluate(() => document.activeElement.id), 'filter', 'focus after /');
    await page.keyboard.type('BETA');
    await page.waitForFunction(() => document.querySelectorAll('#rows .row').length === 1);
    assertEq(await rowNames(page), ['beta data.bin'], 'filtered');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => document.querySelectorAll('#rows .row').length > 1);
  });

  await check('Enter in the filter searches names in every folder below (SEARCH)', async () => {
    await page.locator('#filter').fill('GAMMA');
    const before = await page.evaluate(() => window.davitUi.searches || 0);
    await page.locator('#filter').press('Enter');
    await page.waitForFunction((n) => window.davitUi.searches === n + 1 && window.davitUi.ready, before);
    assertEq(await rowNames(page), ['Folder one/gamma ü.md'], 'found in a subfolder');
    const status = await page.locator('#status').textContent();
    if (!status.startsWith('1 found for “GAMMA” below this folder')) fail(status);
    await page.screenshot({ path: join(SHOTS, 'search.png') });
    // The result's actions work on it where it is: its download is its own URL.
    await actionsOf(page, 'gamma ü.md').click();
    assertEq(await page.locator('#menu-download').getAttribute('href'), '/Folder%20one/' + enc('gamma ü.md'), 'href');
    await page.keyboard.press('Escape');
    const loadsBefore = await loads(page);
    await page.locator('#filter').focus();
    await page.keyboard.press('Escape');
    await waitReady(page, loadsBefore);
    if (!(await rowNames(page)).includes('big')) fail('not back in the folder');
  });

  await check('keyboard: Tab reaches a row action, Enter opens it, Escape closes it', async () => {
    await page.locator('#filter').focus();
    let focused = '';
    for (let i = 0; i < 20 && !focused.startsWith('Actions for'); i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => document.activeElement.getAttribute('aria-label') || '');
    }
    if (!focused.startsWith('Actions for')) fail('no row action reached by Tab');
    await page.keyboard.press('Enter');
    assertEq(await page.locator('#menu').evaluate((m) => m.open), true, 'menu open');
    await page.keyboard.press('Escape');
    assertEq(await page.locator('#menu').evaluate((m) => m.open), false, 'menu closed');
    assertEq(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), focused, 'focus back');
  });

  await check('dark colour scheme', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const [r, g, b] = bg.match(/\d+/g).map(Number);
    if (r + g + b > 150) fail(`background ${bg} is not dark`);
    await page.screenshot({ path: join(SHOTS, 'listing-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
  });

  await check('a phone-sized screen: nothing wider than the screen', async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    await page.waitForTimeout(100);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) fail(`${overflow} px wider than the screen`);
    assertEq(await page.locator('[role=columnheader].c-date').isVisible(), false, 'date column hidden');
    await page.screenshot({ path: join(SHOTS, 'listing-narrow.png') });
    await page.setViewportSize({ width: 1100, height: 720 });
  });

  await check('no Content-Security-Policy violation, no script error, no dialog', async () => {
    assertEq(await page.evaluate(() => window.__csp), [], 'CSP violations');
    assertEq(pageErrors, [], 'page errors');
    assertEq(dialogs, [], 'dialogs');
  });

  await check('with [auth] over HTTPS: a read-only user sees no control that would change anything', async () => {
    if (!AUTH_URL.startsWith('https://')) fail(`the [auth] server is not on HTTPS: ${AUTH_URL}`);
    const seeded = await fetch(AUTH_URL + '/shared.txt', {
      method: 'PUT', headers: { Authorization: basicAuth('writer') }, body: 'shared',
    });
    assertEq(seeded.status, 201, 'PUT by the writer');
    const ctx = await browser.newContext({
      viewport: { width: 1100, height: 720 },
      ignoreHTTPSErrors: true, // the test's self-signed certificate
      httpCredentials: { username: 'reader', password: 'reader-pw' },
    });
    const p = await ctx.newPage();
    await p.goto(AUTH_URL + '/');
    await p.waitForFunction(() => window.davitUi && window.davitUi.ready && window.davitUi.writable === false, null, { timeout: 30000 });
    assertEq(await rowNames(p), ['shared.txt'], 'listing');
    for (const id of ['#upload-label', '#upload-folder-label', '#new-folder']) {
      assertEq(await p.locator(id).isVisible(), false, `${id} hidden`);
    }
    assertEq(await p.locator('#download-zip').isVisible(), true, 'zip download shown');
    await actionsOf(p, 'shared.txt').click();
    for (const a of ['rename', 'move', 'copy', 'delete', 'edit']) {
      assertEq(await p.locator(`#menu button[data-action="${a}"]`).isVisible(), false, `${a} hidden`);
    }
    assertEq(await p.locator('#menu-download').isVisible(), true, 'download shown');
    await p.screenshot({ path: join(SHOTS, 'read-only.png') });
    await p.keyboard.press('Escape');
    // The server refuses what the page hides.
    const forced = await p.evaluate(async () => (await fetch('/forced.txt', { method: 'PUT', body: 'x' })).status);
    assertEq(forced, 403, 'forced PUT');
    const gone = await fetch(AUTH_URL + '/forced.txt', { method: 'HEAD', headers: { Authorization: basicAuth('writer') } });
    assertEq(gone.status, 404, 'nothing written');
    await ctx.close();
  });

  await check('with [auth] over HTTPS: the writer uploads through the page', async () => {
    const ctx = await browser.newContext({
      viewport: { width: 1100, height: 720 },
      ignoreHTTPSErrors: true, // the test's self-signed certificate
      httpCredentials: { username: 'writer', password: 'writer-pw' },
    });
    const p = await ctx.newPage();
    await p.goto(AUTH_URL + '/');
    await p.waitForFunction(() => window.davitUi && window.davitUi.ready && window.davitUi.writable === true, null, { timeout: 30000 });
    assertEq(await p.locator('#upload-label').isVisible(), true, 'upload shown');
    const before = await loads(p);
    const buf = rnd(64 * 1024);
    await p.setInputFiles('#upload', [{ name: 'by writer.bin', mimeType: 'application/octet-stream', buffer: buf }]);
    await p.locator('#uploads[data-state="done"]').waitFor({ timeout: 30000 });
    await waitReady(p, before);
    const r = await fetch(AUTH_URL + '/' + enc('by writer.bin'), { headers: { Authorization: basicAuth('writer') } });
    assertEq(r.status, 200, 'GET');
    if (!Buffer.from(await r.arrayBuffer()).equals(buf)) fail('bytes differ');
    await ctx.close();
  });

  await check('a 200 MiB upload cut off by a server crash resumes after the restart, same bytes', async () => {
    const bin = process.env.DAVIT_BIN;
    if (!bin) fail('DAVIT_BIN is not set');
    const dir = mkdtempSync(join(tmpdir(), 'davit-resume-'));
    const share = join(dir, 'share');
    mkdirSync(share);
    const src = join(dir, 'big upload.bin');
    const hash = createHash('sha256');
    const parts = [];
    for (let i = 0; i < 25; i++) {
      const b = rnd(8 << 20);
      hash.update(b);
      parts.push(b);
    }
    writeFileSync(src, Buffer.concat(parts));
    const digest = hash.digest('hex');
    const port = 20000 + Math.floor(Math.random() * 20000);
    const serve = () => spawn(bin, ['serve', share, '--listen', `127.0.0.1:${port}`], { stdio: 'ignore' });
    let server = serve();
    try {
      await waitPort(port);
      const ctx = await browser.newContext({ viewport: { width: 1100, height: 720 } });
      const p = await ctx.newPage();
      const cdp = await ctx.newCDPSession(p);
      await cdp.send('Network.enable');
      // 40 MB/s: the upload takes several seconds, long enough to be cut in the middle.
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 40 * 1024 * 1024,
      });
      await p.goto(`http://127.0.0.1:${port}/`);
      await waitReady(p, 0);
      await p.setInputFiles('#upload', src);
      await p.waitForFunction(() => {
        const b = document.querySelector('#uploads-list progress');
        return b && b.value > b.max * 0.3;
      }, null, { timeout: 120000 }).catch(async (e) => {
        fail(`${e.message.split('\n')[0]}; the uploads say: ${await p.locator('#uploads').textContent()}`);
      });
      server.kill('SIGKILL');
      await new Promise((r) => server.once('exit', r));
      await p.waitForFunction(() => (window.davitUi.retries || 0) > 0, null, { timeout: 60000 });
      await p.screenshot({ path: join(SHOTS, 'upload-retrying.png') });
      assertEq(await p.locator('#uploads').getAttribute('data-state'), 'running', 'still running');
      server = serve();
      await waitPort(port);
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
      });
      await p.locator('#uploads[data-state="done"]').waitFor({ timeout: 180000 });
      const resumedAt = await p.evaluate(() => window.davitUi.resumedAt || 0);
      if (!(resumedAt > 0)) fail('the upload started over instead of resuming');
      console.log(`     resumed at byte ${resumedAt} of ${200 << 20}`);
      const got = createHash('sha256').update(readFileSync(join(share, 'big upload.bin'))).digest('hex');
      assertEq(got, digest, 'sha256 of the uploaded file');
      await ctx.close();
    } finally {
      server.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // The 10,000-entry directory: a benchmark figure, not an assertion on time.
  await check(`a directory of ${BIG_DIR_ENTRIES} entries is listed whole`, async () => {
    const runs = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      await page.goto(url('/big/'));
      await page.waitForFunction(() => window.davitUi && window.davitUi.ready, null, { timeout: 60000 });
      const wall = Date.now() - t0;
      const t = await page.evaluate(() => window.davitUi.timing);
      runs.push({ ...t, wall });
      assertEq(t.count, BIG_DIR_ENTRIES, 'rows rendered');
    }
    assertEq(await page.locator('#rows .row').count(), BIG_DIR_ENTRIES, 'rows in the table');
    const med = (k) => {
      const v = runs.map((r) => r[k]).sort((a, b) => a - b);
      return Math.round(v[Math.floor(v.length / 2)]);
    };
    console.log(`bench: ${BIG_DIR_ENTRIES}-entry directory, median of ${runs.length} loads (ms since navigation start): ` +
      `PROPFIND answered ${med('fetched')}, first ${150} rows ${med('firstRows')}, all rows ${med('rendered')} ` +
      `(PROPFIND ${med('fetchMs')}, XML parse ${med('parseMs')}; wall clock incl. page load ${med('wall')})`);
    await page.screenshot({ path: join(SHOTS, 'big-directory.png') });
    await page.locator('#filter').fill('entry-0999');
    await page.waitForFunction(() => document.querySelectorAll('#rows .row').length === 10);
  });

  await browser.close();
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL the scenario stopped: ${e && e.stack ? e.stack : e}`);
}
console.log(`screenshots in ${SHOTS}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
