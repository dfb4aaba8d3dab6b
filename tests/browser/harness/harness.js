/*
 * harness.js - the stand-in for Grist around the widget (browser test). Query parameters:
 *   widget  the widget's URL (the onboarding service's /widget/)
 *   doc     the Grist emulator's document the widget sits in
 *   key     the emulator API key of the user viewing the page (the agent): tokens are minted for them
 *   access  the access level Grist granted the widget: full (default), read table, none
 * It answers the plugin API stub's calls: ready (recorded; then onOptions with the granted access level),
 * getAccessToken (a real token minted by this page's server, the Grist emulator, POST /admin/access-token,
 * kept while valid as Grist's plugin API does; refused without full access). window.harness records what
 * happened, for the test.
 */
(function () {
  'use strict';
  var q = new URLSearchParams(location.search);
  var widgetUrl = new URL(q.get('widget'));
  var doc = q.get('doc');
  var key = q.get('key');
  var access = q.get('access') || 'full';
  var frame = document.getElementById('widget');
  var cache = {};
  var log = window.harness = {ready: [], tokenCalls: 0, minted: 0, refused: 0};
  document.getElementById('doc-name').textContent = doc;

  function mint(readOnly) {
    var c = cache[readOnly];
    if (c && Date.now() < c.until) return Promise.resolve(c.answer);
    return fetch('/admin/access-token', {
      method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({doc: doc, key: key, readOnly: readOnly}),
    }).then(function (r) {
      if (!r.ok) throw new Error('access-token: HTTP ' + r.status);
      return r.json();
    }).then(function (answer) {
      log.minted++;
      /* Kept until a minute before it expires. */
      cache[readOnly] = {answer: answer, until: Date.now() + Math.max(0, answer.ttlMsecs - 60000)};
      return answer;
    });
  }

  function reply(id, result, error) {
    frame.contentWindow.postMessage({d2gHarness: 'reply', id: id, result: result, error: error}, widgetUrl.origin);
  }

  window.addEventListener('message', function (ev) {
    if (ev.source !== frame.contentWindow || ev.origin !== widgetUrl.origin) return;
    var m = ev.data;
    if (!m || m.d2gHarness !== 'call') return;
    if (m.method === 'ready') {
      log.ready.push(m.arg);
      reply(m.id, null);
      frame.contentWindow.postMessage({d2gHarness: 'options', options: null,
                                       interaction: {accessLevel: access}}, widgetUrl.origin);
    } else if (m.method === 'getAccessToken') {
      log.tokenCalls++;
      if (access !== 'full') {
        log.refused++;
        reply(m.id, null, 'Access token requires full access');
        return;
      }
      mint(!!(m.arg && m.arg.readOnly)).then(function (t) { reply(m.id, t); },
                                             function (e) { reply(m.id, null, String(e.message)); });
    } else {
      reply(m.id, null, 'Unknown method ' + m.method);
    }
  });

  frame.src = widgetUrl.href;
})();
