#!/usr/bin/env node
/*
 * widget.test.js - the onboarding widget (widget/) in a real browser: headless Chromium (Debian's
 * /usr/bin/chromium, no browser download) driven by playwright-core, against a running ds2grist
 * (the producer's onboarding listener, a worker) and the DS and Grist emulators. test_widget.c starts all
 * of that and runs this script with the addresses in the environment (below); it can also be run by hand
 * against any such stack.
 *
 * A harness page (harness/grist.html) stands in for Grist's document page: the Grist emulator serves it
 * (/pages/grist.html) and the harness's grist-plugin-api.js (at /grist-plugin-api.js, as Grist serves its
 * own) from tests/browser/harness (its --static-dir), so the widget loads "Grist's" plugin API from the
 * Grist server as in production, and the harness mints real access tokens from the emulator
 * (POST /admin/access-token, same origin). Steps, in order (each depends on the ones before):
 *   - no full access granted: the widget says so;
 *   - a viewer (read-only token): connect refused with the API's message;
 *   - a DS token that cannot read the procedure: the API's refusal shown, the field emptied;
 *   - connect; the first rows' status: dossiers > 0, equal to the Grist emulator's rows and to DS's;
 *   - a screenshot of the widget (D2G_ARTIFACTS/onboarding-widget.png);
 *   - pause, resume (by keyboard), disconnect (with its confirmation);
 *   - the DS tokens in no DOM, storage or cookie, and in no request but the connect POST's body.
 * Prints "ok N - step" lines and a closing "N passed, N failed"; exits 1 on the first failure (after a
 * screenshot widget-failure.png in D2G_ARTIFACTS).
 *
 * Environment: D2G_ONBOARDING_URL (http://127.0.0.1:PORT), D2G_GRIST_URL, D2G_DS_ADMIN_URL (the DS
 * emulator, for its dossier count), D2G_GRIST_DOC, D2G_AGENT_KEY (an editor of the document),
 * D2G_VIEWER_KEY (a viewer), D2G_PROCEDURE, D2G_TABLE_PREFIX, D2G_DS_TOKEN_GOOD, D2G_DS_TOKEN_BAD,
 * D2G_FILE_PROCEDURE (optional: one the configuration file syncs into the document), D2G_ARTIFACTS (a
 * directory), D2G_CHROMIUM (default /usr/bin/chromium), D2G_POLL_S (the widget's poll, default 1).
 */
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');

function env(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (dflt !== undefined) return dflt;
    console.error(`widget.test.js: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const ONBOARDING = env('D2G_ONBOARDING_URL').replace(/\/$/, '');
const GRIST = env('D2G_GRIST_URL').replace(/\/$/, '');
const DS_ADMIN = env('D2G_DS_ADMIN_URL').replace(/\/$/, '');
const DOC = env('D2G_GRIST_DOC');
const AGENT_KEY = env('D2G_AGENT_KEY');
const VIEWER_KEY = env('D2G_VIEWER_KEY');
const PROCEDURE = Number(env('D2G_PROCEDURE'));
const PREFIX = env('D2G_TABLE_PREFIX');
const GOOD_TOKEN = env('D2G_DS_TOKEN_GOOD');
const BAD_TOKEN = env('D2G_DS_TOKEN_BAD');
const FILE_PROCEDURE = process.env.D2G_FILE_PROCEDURE ? Number(process.env.D2G_FILE_PROCEDURE) : null;
const ARTIFACTS = env('D2G_ARTIFACTS');
const CHROMIUM = env('D2G_CHROMIUM', '/usr/bin/chromium');
const POLL_S = Number(env('D2G_POLL_S', '1'));
const SYNC_TIMEOUT_MS = 90000;

/* ---------- small helpers ---------- */

async function json(method, url, body, headers) {
  const r = await fetch(url, {
    method,
    headers: Object.assign(body ? { 'Content-Type': 'application/json' } : {}, headers || {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  return { status: r.status, data };
}

/* What the plugin API would give the agent: a real access token from the Grist emulator. */
async function accessToken(key) {
  const r = await json('POST', `${GRIST}/admin/access-token`, { doc: DOC, key, readOnly: false });
  assert.equal(r.status, 200, `access token: ${JSON.stringify(r.data)}`);
  return r.data;
}

/* The onboarding API called directly (not through the browser): the reference the page is compared to. */
async function apiDirect(method, p, body, key) {
  const t = await accessToken(key || AGENT_KEY);
  return json(method, `${ONBOARDING}/api/v1/${p}`, body,
              { 'X-Grist-Access-Token': t.token, 'X-Grist-Base-Url': t.baseUrl });
}

async function gristRowCount(table) {
  const r = await json('GET', `${GRIST}/admin/docs/${DOC}/tables`);
  assert.equal(r.status, 200);
  const t = r.data.tables[table];
  return t ? t.rows : 0;
}

async function dsDossierCount(procedure) {
  const r = await json('GET', `${DS_ADMIN}/admin/procedures/${procedure}/dossiers`);
  assert.equal(r.status, 200);
  return r.data.dossiers.length;
}

async function until(what, fn, timeoutMs) {
  const end = Date.now() + (timeoutMs || 30000);
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/* A refusal as the widget shows it: an alert, the agent's French sentence for the API's code, and the
   API's own sentence under it ("Réponse du service : ..."). */
async function assertRefusal(msg, apiAnswer, french) {
  assert.equal(await msg.getAttribute('role'), 'alert');
  assert.equal(await msg.getAttribute('data-code'), apiAnswer.code);
  const text = await msg.textContent();
  assert.match(text, french);
  assert.equal(await msg.locator('.detail').textContent(), `Réponse du service : ${apiAnswer.error}`);
}

/* ---------- the browser ---------- */

const requests = []; /* every request any frame of any page made: {method, url, headers, body} */

async function newHarnessPage(context, key, access) {
  const page = await context.newPage();
  page.on('request', async (req) => {
    const entry = { method: req.method(), url: req.url(), headers: {}, body: req.postData() || '' };
    requests.push(entry);
    try { entry.headers = await req.allHeaders(); } catch (e) { entry.headers = req.headers(); }
  });
  page.on('console', (m) => { if (m.type() === 'error') console.log(`# console: ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`# page error: ${e.message}`));
  const widget = `${ONBOARDING}/widget/?poll=${POLL_S}`;
  const q = new URLSearchParams({ widget, doc: DOC, key, access });
  await page.goto(`${GRIST}/pages/grist.html?${q}`);
  const frame = page.frameLocator('#widget');
  return { page, frame };
}

async function widgetFrame(page) {
  return until('the widget frame', async () => page.frames().find((f) => f.url().startsWith(`${ONBOARDING}/widget/`)));
}

/* Everything of the widget's page a person or a script could read: its HTML, every field's value,
   its storage and cookies. */
async function widgetSurface(page) {
  const f = await widgetFrame(page);
  return f.evaluate(() => {
    const values = Array.from(document.querySelectorAll('input, textarea')).map((i) => i.value);
    const storage = [];
    for (const s of [localStorage, sessionStorage]) {
      for (let i = 0; i < s.length; i++) storage.push(s.key(i) + '=' + s.getItem(s.key(i)));
    }
    return { html: document.documentElement.outerHTML, text: document.body.innerText, values, storage,
             cookie: document.cookie };
  });
}

/* ---------- steps ---------- */

let passed = 0;
let failed = 0;
let current = null; /* the harness page in use, for the failure screenshot */

async function step(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok ${passed} - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok ${passed + failed} - ${name}`);
    console.log(`# ${String(e && e.stack || e).split('\n').join('\n# ')}`);
    throw e;
  }
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
                                          args: ['--no-sandbox', '--disable-gpu'] });
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 }, locale: 'fr-FR',
                                             timezoneId: 'Europe/Paris' });
  context.setDefaultTimeout(15000);
  try {
    await run(context);
  } catch (e) {
    if (!failed) { /* not a step's assertion (those are counted and printed by step) */
      failed++;
      console.log(`# ${String(e && e.stack || e).split('\n').join('\n# ')}`);
    }
    if (current) {
      try { await current.page.screenshot({ path: path.join(ARTIFACTS, 'widget-failure.png') }); } catch (e2) { /* */ }
    }
  } finally {
    await browser.close();
  }
}

async function run(context) {
  const expectedDossiers = await dsDossierCount(PROCEDURE);

  await step('the widget asks for full access and says so when Grist does not grant it', async () => {
    const h = current = await newHarnessPage(context, AGENT_KEY, 'none');
    await h.frame.locator('#global-error').filter({ hasText: 'accès complet' }).waitFor();
    const ready = await h.page.evaluate(() => window.harness.ready);
    assert.deepEqual(ready, [{ requiredAccess: 'full' }]);
    await h.page.close();
  });

  await step('a viewer of the document (read-only token) is refused with the API\'s message', async () => {
    const expected = await apiDirect('POST', 'procedures', { procedure: PROCEDURE, ds_token: BAD_TOKEN, dry_run: true },
                                     VIEWER_KEY);
    assert.equal(expected.data.code, 'grist_read_only', JSON.stringify(expected.data));
    const h = current = await newHarnessPage(context, VIEWER_KEY, 'full');
    await h.frame.getByRole('heading', { name: 'Connecter une démarche' }).waitFor();
    await h.frame.getByLabel('Numéro de la démarche').fill(String(PROCEDURE));
    await h.frame.getByLabel("Jeton d'API DS").fill(BAD_TOKEN);
    await h.frame.getByRole('button', { name: 'Connecter la démarche' }).click();
    const msg = h.frame.locator('#connect-message.error');
    await msg.waitFor();
    await assertRefusal(msg, expected.data, /Vous pouvez consulter ce document mais pas le modifier/);
    await h.page.close();
  });

  const h = current = await newHarnessPage(context, AGENT_KEY, 'full');
  const f = h.frame;

  await step('the widget lists the document\'s procedures (the configuration file\'s one read-only)', async () => {
    await f.getByRole('heading', { name: 'Connecter une démarche' }).waitFor();
    if (FILE_PROCEDURE) {
      const card = f.locator(`li.procedure[data-procedure="${FILE_PROCEDURE}"]`);
      await card.waitFor();
      assert.match(await card.locator('[data-field="source"]').textContent(), /plateforme/);
      assert.equal(await card.locator('.actions').isHidden(), true);
    }
    assert.equal(await f.locator(`li.procedure[data-procedure="${PROCEDURE}"]`).count(), 0);
  });

  await step('a DS token that cannot read the procedure: the API\'s refusal shown, the field emptied', async () => {
    await f.getByLabel('Numéro de la démarche').fill(String(PROCEDURE));
    await f.getByLabel("Jeton d'API DS").fill(BAD_TOKEN);
    await f.getByLabel('Nom de la table (facultatif)').fill(PREFIX);
    await f.getByRole('button', { name: 'Connecter la démarche' }).click();
    const msg = f.locator('#connect-message.error');
    await msg.waitFor();
    const expected = await apiDirect('POST', 'procedures', { procedure: PROCEDURE, ds_token: BAD_TOKEN, dry_run: true });
    assert.equal(expected.status, 403);
    assert.equal(expected.data.code, 'ds_token_refused');
    await assertRefusal(msg, expected.data, new RegExp(`^Ce jeton DS ne permet pas de lire la démarche n° ${PROCEDURE} :`));
    assert.equal(await f.getByLabel("Jeton d'API DS").inputValue(), '');
    assert.equal(await f.locator(`li.procedure[data-procedure="${PROCEDURE}"]`).count(), 0);
  });

  await step('connect: the service answers with what it creates, the procedure appears as starting', async () => {
    /* The number and the prefix stay in their fields after a refusal; the token is typed again. */
    assert.equal(await f.getByLabel('Numéro de la démarche').inputValue(), String(PROCEDURE));
    await f.getByLabel("Jeton d'API DS").fill(GOOD_TOKEN);
    await f.getByLabel("Jeton d'API DS").press('Enter');
    const msg = f.locator('#connect-message.ok');
    await msg.waitFor();
    assert.match(await msg.textContent(), new RegExp(`Démarche n° ${PROCEDURE} .*connectée\\. Tables? : ${PREFIX}`));
    assert.equal(await f.getByLabel("Jeton d'API DS").inputValue(), '');
    assert.equal(await f.getByLabel('Numéro de la démarche').inputValue(), '');
    await f.locator(`li.procedure[data-procedure="${PROCEDURE}"]`).waitFor();
  });

  const card = f.locator(`li.procedure[data-procedure="${PROCEDURE}"]`);

  await step('the first rows\' status: dossiers > 0, equal to the Grist emulator\'s rows and to DS\'s', async () => {
    const shown = async () => Number((await card.locator('[data-field="dossiers"]').textContent()).replace(/\D/g, '') || -1);
    await until(`${expectedDossiers} dossiers in Grist and in the widget`, async () =>
      (await gristRowCount(PREFIX)) === expectedDossiers && (await shown()) === expectedDossiers, SYNC_TIMEOUT_MS);
    const rows = await gristRowCount(PREFIX);
    assert.ok(rows > 0);
    assert.equal(await shown(), rows);
    console.log(`# ${rows} dossiers: in DS, in the Grist emulator, and shown by the widget`);
    await until('the badge "Synchronisée"', async () => (await card.locator('.badge').textContent()) === 'Synchronisée');
    assert.notEqual(await card.locator('[data-field="last-sync"]').textContent(), 'pas encore');
    assert.equal(await card.locator('[data-field="last-error"]').textContent(), 'aucune');
    assert.match(await card.locator('.procedure-title').textContent(), new RegExp(`Démarche n° ${PROCEDURE} — .+`));
  });

  await step('options set through the API are shown on the card (read only)', async () => {
    assert.equal(await card.locator('[data-field="options"]').textContent(), 'par défaut (tous les dossiers)');
    const r = await apiDirect('POST', `procedures/${PROCEDURE}/options`, { mapping: { avis: true } });
    assert.equal(r.status, 200);
    assert.equal(r.data.mapping.avis, true);
    assert.equal(r.data.resync_requested, false);
    await until('the options on the card', async () =>
      (await card.locator('[data-field="options"]').textContent()) === 'tables en plus : avis', 30000);
  });

  await step('a screenshot of the widget in its panel', async () => {
    const file = path.join(ARTIFACTS, 'onboarding-widget.png');
    await (await widgetFrame(h.page)).evaluate(() => { document.activeElement.blur(); window.scrollTo(0, 0); });
    await h.page.locator('aside.panel').screenshot({ path: file });
    assert.ok(fs.statSync(file).size > 5000);
    console.log(`# screenshot: ${file}`);
  });

  await step('pause: the service says paused, the widget shows it and offers to resume', async () => {
    await card.getByRole('button', { name: 'Mettre en pause' }).click();
    await card.locator('.badge', { hasText: 'En pause' }).waitFor();
    const st = await apiDirect('GET', `procedures/${PROCEDURE}`);
    assert.equal(st.data.state, 'paused');
    await card.getByRole('button', { name: 'Reprendre' }).waitFor();
    assert.equal(await card.getByRole('button', { name: 'Mettre en pause' }).isHidden(), true);
  });

  await step('resume, by keyboard (the focus is on "Reprendre" after the pause)', async () => {
    const focused = await (await widgetFrame(h.page)).evaluate(() => document.activeElement && document.activeElement.textContent);
    assert.equal(focused, 'Reprendre');
    await h.page.keyboard.press('Enter');
    await card.getByRole('button', { name: 'Mettre en pause' }).waitFor();
    const st = await apiDirect('GET', `procedures/${PROCEDURE}`);
    assert.equal(st.data.state, 'active');
    await until('the badge back to "Synchronisée"', async () =>
      (await card.locator('.badge').textContent()) === 'Synchronisée');
  });

  await step('disconnect, after its confirmation: the procedure gone from the widget and from the service', async () => {
    await card.getByRole('button', { name: 'Déconnecter' }).click();
    await card.getByRole('button', { name: 'Annuler' }).click();
    assert.equal(await card.locator('[data-role="confirm"]').isHidden(), true);
    await card.getByRole('button', { name: 'Déconnecter' }).click();
    await card.getByRole('button', { name: 'Confirmer la déconnexion' }).click();
    await f.locator('#global-status', { hasText: `Démarche n° ${PROCEDURE} déconnectée` }).waitFor();
    await until('the card removed', async () => (await card.count()) === 0);
    const st = await apiDirect('GET', `procedures/${PROCEDURE}`);
    assert.equal(st.status, 404);
    assert.equal(st.data.code, 'not_connected');
    assert.ok((await gristRowCount(PREFIX)) > 0, 'the tables stay');
  });

  await step('the DS tokens: in no DOM, field, storage or cookie; in no request but the connect POST\'s body', async () => {
    const s = await widgetSurface(h.page);
    const top = await h.page.content();
    for (const token of [GOOD_TOKEN, BAD_TOKEN]) {
      for (const [where, text] of [['html', s.html], ['text', s.text], ['fields', s.values.join('\n')],
                                   ['storage', s.storage.join('\n')], ['cookie', s.cookie], ['harness', top]]) {
        assert.ok(!text.includes(token), `a DS token in the widget's ${where}`);
      }
    }
    const connectPosts = (token) => requests.filter((r) => r.body.includes(token));
    for (const r of requests) {
      for (const token of [GOOD_TOKEN, BAD_TOKEN]) {
        assert.ok(!r.url.includes(token), `a DS token in the URL ${r.method} ${r.url.slice(0, 80)}`);
        assert.ok(!JSON.stringify(r.headers).includes(token), `a DS token in the headers of ${r.method} ${r.url}`);
        if (r.body.includes(token)) {
          assert.equal(r.method, 'POST');
          assert.equal(r.url, `${ONBOARDING}/api/v1/procedures`);
        }
      }
    }
    /* the viewer's attempt and the bad token's (the same token), then the good one: once each */
    assert.equal(connectPosts(BAD_TOKEN).length, 2);
    assert.equal(connectPosts(GOOD_TOKEN).length, 1);
    const api = requests.filter((r) => r.url.startsWith(`${ONBOARDING}/api/v1/procedures`));
    assert.ok(api.length > 5);
    for (const r of api) {
      assert.ok(r.headers['x-grist-access-token'], `${r.method} ${r.url} without an access token`);
      assert.ok(!r.url.includes('auth='), 'an access token in a URL');
    }
    console.log(`# ${requests.length} requests checked, ${api.length} to the procedures API`);
  });
}

main().then(() => {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed || passed === 0 ? 1 : 0);
}, (e) => {
  console.log(`# ${e && e.stack || e}`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
