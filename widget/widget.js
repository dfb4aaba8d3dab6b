/*
 * widget.js - the onboarding widget's behaviour (docs/onboarding.md for agents, docs/onboarding-api.md for
 * the API it calls).
 *
 * In order: read the service's /api/v1/info (no credential), load Grist's plugin API from the Grist server
 * that frames the widget (one of the servers the service lists), call grist.ready({requiredAccess: 'full'}),
 * then list the document's procedures and poll their status every few seconds. Each API request carries a
 * fresh document access token from grist.docApi.getAccessToken({readOnly: false}) in headers; the agent's
 * DS token goes in the body of the connect POST only: it is taken from its password field and the field
 * emptied when the request leaves, it is never stored (no localStorage, no cookie) nor written to the page.
 *
 * Query parameters (all optional): grist=<URL of the Grist server> when the framing server cannot be seen
 * (it must still be one the service lists), poll=<seconds> between status updates (default 5, at least 1).
 * A page that provides window.grist itself (a test harness) skips the plugin API's loading.
 */
(function () {
  'use strict';

  var API_BASE = new URL('../api/v1/', document.baseURI);
  var params = new URLSearchParams(location.search);
  var POLL_MS = Math.max(1, Number(params.get('poll')) || 5) * 1000;
  var PROCEDURE_MAX = 2147483647;

  var els = {};
  var state = {
    info: null,
    selfService: true,
    cards: new Map(),   /* procedure number -> {li, status} */
    titles: new Map(),  /* procedure number -> DS title, learnt at connect (this session only) */
    timer: null,
    refreshing: null,
    noAccess: false,
  };

  /* ---------- errors ---------- */

  /* message: what to show; apiText: the API's own `error` sentence, when it answered one. */
  function WidgetError(message, code, status, retryAfter, apiText) {
    this.message = message;
    this.code = code || 'widget';
    this.status = status || 0;
    this.retryAfter = retryAfter || 0;
    this.apiText = apiText || '';
  }
  WidgetError.prototype = Object.create(Error.prototype);

  var NO_ACCESS_TEXT = "Ce widget a besoin de l'accès complet au document. Dans le panneau de droite de Grist " +
    "(onglet « Widget »), choisissez « Accès complet au document » puis acceptez.";

  function fallbackText(status) {
    if (status === 0) return "Le service ds2grist ne répond pas. Réessayez dans un moment.";
    if (status === 429) return "Trop de demandes en peu de temps. Patientez un peu avant de réessayer.";
    if (status >= 500) return "Le service ds2grist a rencontré un problème (erreur " + status + "). Réessayez dans un moment.";
    return "La demande a été refusée (erreur " + status + ").";
  }

  /* The agent's sentence for a refusal, by the API's stable code (docs/onboarding-api.md, "Errors"); n is
     the procedure concerned, if any. Codes the agent cannot meet through this page keep the API's text. */
  function refusalText(e, n) {
    var proc = n ? 'la démarche n° ' + n : 'cette démarche';
    var account = state.info && state.info.platform_account;
    switch (e.code) {
      case 'grist_token_missing':
      case 'grist_token_invalid':
      case 'grist_token_expired':
        return "Grist n'a pas fourni d'accès valide à ce document. Rechargez la page ; si le problème " +
          "continue, vérifiez que le widget a l'« Accès complet au document ».";
      case 'grist_read_only':
        return 'Vous pouvez consulter ce document mais pas le modifier : seule une personne qui peut le ' +
          'modifier (éditeur ou propriétaire) peut connecter une démarche ou agir sur sa synchronisation.';
      case 'grist_server_not_allowed':
        return "Ce document est sur un serveur Grist que cette plateforme ne sert pas : la synchronisation " +
          "n'y est pas possible.";
      case 'platform_no_access':
        return account
          ? 'Le compte Grist de la plateforme ne peut pas modifier ce document. Partagez le document avec ' +
            account + ' en tant qu\u2019éditeur, puis réessayez.'
          : 'Le compte Grist de la plateforme ne peut pas modifier ce document. Partagez-le avec lui en tant ' +
            'qu\u2019éditeur (l\u2019équipe de la plateforme vous indiquera lequel), puis réessayez.';
      case 'ds_token_refused':
        return 'Ce jeton DS ne permet pas de lire ' + proc + ' : jeton mal copié, révoqué, ou dont le compte ' +
          "n'est pas instructeur de la démarche. Vérifiez-le dans votre profil DS et collez-le à nouveau.";
      case 'ds_procedure_not_found':
        return 'DS ne connaît pas ' + proc + ' : vérifiez son numéro.';
      case 'already_connected':
        return 'La démarche ' + (n ? 'n° ' + n + ' ' : '') + 'est déjà synchronisée, dans ce document ou dans ' +
          'un autre, et ne peut l\u2019être que dans un seul. Si elle figure ci-dessus, reprenez-la ou ' +
          'resynchronisez-la ; sinon, adressez-vous à l\u2019équipe de la plateforme.';
      case 'managed_by_operator':
        return 'La démarche ' + (n ? 'n° ' + n + ' ' : '') + 'est configurée par l\u2019équipe de la plateforme : ' +
          'adressez-vous à elle pour la modifier.';
      case 'not_connected':
        return 'La démarche ' + (n ? 'n° ' + n + ' ' : '') + "n'est pas (ou plus) synchronisée dans ce document.";
      case 'self_service_off':
        return "La connexion de démarches depuis Grist est désactivée par l'équipe de la plateforme.";
      case 'rate_limited':
        return 'Trop de demandes en peu de temps.' +
          (e.retryAfter ? ' Réessayez dans ' + e.retryAfter + ' s.' : ' Patientez un peu avant de réessayer.');
      case 'grist_unavailable':
        return 'Grist ne répond pas correctement pour le moment ; rien n\u2019a été modifié. Réessayez dans un moment.';
      case 'ds_unavailable':
        return 'DS ne répond pas correctement pour le moment ; rien n\u2019a été modifié. Réessayez dans un moment.';
      case 'unavailable':
        return 'Le service ne peut pas joindre son stockage pour le moment ; rien n\u2019a été modifié. ' +
          'Réessayez dans un moment.';
      default:
        return e.message;
    }
  }

  /* ---------- Grist ---------- */

  function sameOrigin(a, b) {
    try { return new URL(a).origin === new URL(b).origin; } catch (e) { return false; }
  }

  /* The Grist server whose plugin API to load: the one framing us if the service lists it, else the first. */
  function chooseGristServer(servers) {
    var candidates = [];
    if (params.get('grist')) candidates.push(params.get('grist'));
    if (location.ancestorOrigins && location.ancestorOrigins.length) candidates.push(location.ancestorOrigins[0]);
    if (document.referrer) candidates.push(document.referrer);
    for (var i = 0; i < candidates.length; i++) {
      for (var j = 0; j < servers.length; j++) {
        if (sameOrigin(candidates[i], servers[j])) return servers[j];
      }
    }
    return servers.length ? servers[0] : null;
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement('script');
      s.src = src;
      s.onload = resolve;
      s.onerror = function () { reject(new Error('load')); };
      document.head.appendChild(s);
    });
  }

  function loadPluginApi(servers) {
    if (window.grist) return Promise.resolve();
    var server = chooseGristServer(servers || []);
    var url = null;
    try {
      url = new URL('grist-plugin-api.js', server.replace(/\/*$/, '/'));
      if (url.protocol !== 'https:' && url.protocol !== 'http:') url = null;
    } catch (e) { url = null; }
    if (!url) return Promise.reject(new WidgetError("Aucun serveur Grist n'est configuré pour ce service."));
    return loadScript(url.href).then(function () {
      if (!window.grist) throw new Error('no grist');
    }).catch(function () {
      throw new WidgetError("Impossible de charger l'interface de Grist depuis " + url.origin +
        ". Ce widget s'utilise dans un document Grist, comme widget personnalisé.");
    });
  }

  function accessToken() {
    var getter = window.grist && window.grist.docApi && window.grist.docApi.getAccessToken;
    if (!getter) return Promise.reject(new WidgetError(NO_ACCESS_TEXT, 'no_access'));
    return Promise.resolve()
      .then(function () { return window.grist.docApi.getAccessToken({readOnly: false}); })
      .then(function (t) {
        if (!t || typeof t.token !== 'string' || typeof t.baseUrl !== 'string') throw new Error('bad answer');
        return t;
      }, function () { throw new WidgetError(NO_ACCESS_TEXT, 'no_access'); })
      .catch(function (e) {
        if (e instanceof WidgetError) throw e;
        throw new WidgetError(NO_ACCESS_TEXT, 'no_access');
      });
  }

  /* ---------- the API ---------- */

  /* method path [body]: resolves {status, data}; rejects with a WidgetError carrying the API's `error`
     text. With auth, the Grist access token goes in headers (a new one is asked once if it expired). */
  function api(method, path, body, auth) {
    var attempt = 0;
    function once() {
      var creds = auth === false ? Promise.resolve(null) : accessToken();
      return creds.then(function (t) {
        var headers = {'Accept': 'application/json'};
        if (t) {
          headers['X-Grist-Access-Token'] = t.token;
          headers['X-Grist-Base-Url'] = t.baseUrl;
        }
        var init = {method: method, headers: headers, cache: 'no-store', credentials: 'omit',
                    referrerPolicy: 'no-referrer', redirect: 'error'};
        if (body !== undefined) {
          headers['Content-Type'] = 'application/json';
          init.body = JSON.stringify(body);
        }
        return fetch(new URL(path, API_BASE), init).catch(function () {
          throw new WidgetError(fallbackText(0), 'network');
        });
      }).then(function (resp) {
        return resp.text().then(function (text) {
          var data = null;
          try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
          if (resp.ok) return {status: resp.status, data: data};
          var code = data && typeof data.code === 'string' ? data.code : 'http_' + resp.status;
          if (code === 'grist_token_expired' && attempt++ === 0) return once();
          var apiText = data && typeof data.error === 'string' ? data.error : '';
          var retryAfter = parseInt(resp.headers.get('Retry-After') || '', 10) || 0;
          throw new WidgetError(apiText || fallbackText(resp.status), code, resp.status, retryAfter, apiText);
        });
      });
    }
    return once();
  }

  /* ---------- formatting ---------- */

  var dateFmt = new Intl.DateTimeFormat('fr-FR', {day: 'numeric', month: 'short', hour: '2-digit',
                                                  minute: '2-digit', second: '2-digit'});
  var numFmt = new Intl.NumberFormat('fr-FR');

  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return 'il y a ' + s + ' s';
    if (s < 3600) return 'il y a ' + Math.round(s / 60) + ' min';
    if (s < 172800) return 'il y a ' + Math.round(s / 3600) + ' h';
    return 'il y a ' + Math.round(s / 86400) + ' jours';
  }

  function timeText(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return dateFmt.format(d) + ' (' + ago(Date.now() - d.getTime()) + ')';
  }

  /* What the agent sees for a status: [badge text, badge class]. */
  function describe(st) {
    var sync = st.sync || {};
    if (st.state === 'paused') return ['En pause', 'paused'];
    if (sync.last_error) return ['Erreur de synchronisation', 'error'];
    if (!sync.last_sync_at) return ['Démarrage : première synchronisation en attente', 'starting'];
    return ['Synchronisée', 'active'];
  }

  /* ---------- messages ---------- */

  /* A message in el: text, and for a refusal (err) the API's own sentence under it, and its code in
     data-code. */
  function show(el, text, kind, err) {
    el.textContent = text;
    el.className = 'message' + (kind ? ' ' + kind : '');
    el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    if (err && err.code) el.dataset.code = err.code;
    else delete el.dataset.code;
    if (err && err.apiText && err.apiText !== text) {
      var detail = document.createElement('span');
      detail.className = 'detail';
      detail.textContent = 'Réponse du service : ' + err.apiText;
      el.appendChild(detail);
    }
    el.hidden = !text;
  }

  function showRefusal(el, err, n) {
    show(el, refusalText(err, n), 'error', err);
  }

  function globalError(text) {
    show(els.globalError, text || '', 'error');
  }

  /* ---------- procedure cards ---------- */

  function setText(li, field, text) {
    var dd = li.querySelector('[data-field="' + field + '"]');
    if (dd.textContent !== text) dd.textContent = text;
  }

  var OPTION_NAMES = {ref_links: 'liens Ref', geo_areas: 'zones géographiques', avis: 'avis',
                      messages: 'messagerie', attachments: 'pièces jointes'};
  var STATE_NAMES = {en_construction: 'en construction', en_instruction: 'en instruction', accepte: 'accepté',
                     refuse: 'refusé', sans_suite: 'classé sans suite'};

  /* The procedure's mapping options and filter (docs/onboarding-api.md, "options"), read only. */
  function optionsText(st) {
    if (st.source === 'file') return "celles de l'équipe de la plateforme";
    var m = st.mapping || {}, f = st.filter || {}, parts = [];
    var on = Object.keys(OPTION_NAMES).filter(function (k) { return m[k] === true; });
    if (on.length) parts.push('tables en plus : ' + on.map(function (k) { return OPTION_NAMES[k]; }).join(', '));
    var kept = [];
    if (f.states) kept.push('états ' + f.states.map(function (s) { return STATE_NAMES[s] || s; }).join(', '));
    if (f.instruction_groups) kept.push('groupes instructeurs ' + f.instruction_groups.join(', '));
    if (f.deposited_from) kept.push('déposés à partir du ' + f.deposited_from);
    if (f.deposited_to) kept.push("déposés jusqu'au " + f.deposited_to);
    if (kept.length) parts.push('dossiers gardés : ' + kept.join(' ; '));
    return parts.length ? parts.join(' — ') : 'par défaut (tous les dossiers)';
  }

  function renderCard(st) {
    var n = st.procedure;
    var card = state.cards.get(n);
    if (!card) {
      var li = els.template.content.firstElementChild.cloneNode(true);
      li.dataset.procedure = String(n);
      li.querySelector('article').setAttribute('aria-labelledby', 'procedure-' + n + '-title');
      li.querySelector('.procedure-title').id = 'procedure-' + n + '-title';
      li.addEventListener('click', onCardClick);
      li.addEventListener('keydown', onCardKey);
      card = {li: li, status: null};
      state.cards.set(n, card);
      insertSorted(li, n);
    }
    card.status = st;
    var li2 = card.li;
    var title = 'Démarche n° ' + n + (state.titles.has(n) ? ' — ' + state.titles.get(n) : '');
    var h = li2.querySelector('.procedure-title');
    if (h.textContent !== title) h.textContent = title;
    var d = describe(st);
    var badge = li2.querySelector('.badge');
    badge.textContent = d[0];
    badge.className = 'badge ' + d[1];
    li2.dataset.state = st.state;
    li2.dataset.display = d[1];
    var sync = st.sync || {};
    setText(li2, 'table', st.table_prefix || ('D' + n));
    setText(li2, 'last-sync', sync.last_sync_at ? timeText(sync.last_sync_at) : 'pas encore');
    setText(li2, 'dossiers', sync.dossiers === null || sync.dossiers === undefined ? 'pas encore connu'
                                                                                : numFmt.format(sync.dossiers));
    setText(li2, 'last-error', sync.last_error
      ? String(sync.last_error.message || '') + (sync.last_error.at ? ' — ' + timeText(sync.last_error.at) : '')
      : 'aucune');
    var fromFile = st.source === 'file';
    setText(li2, 'options', optionsText(st));
    setText(li2, 'source', fromFile ? "l'équipe de la plateforme (lecture seule)" : 'ce document (ce widget)');
    li2.querySelector('.actions').hidden = fromFile;
    li2.querySelector('[data-action="pause"]').hidden = st.state === 'paused';
    li2.querySelector('[data-action="resume"]').hidden = st.state !== 'paused';
    var buttons = li2.querySelectorAll('.actions button');
    for (var i = 0; i < buttons.length; i++) {
      if (!li2.classList.contains('busy')) buttons[i].disabled = !state.selfService;
    }
    if (fromFile) li2.querySelector('[data-role="confirm"]').hidden = true;
  }

  function insertSorted(li, n) {
    var items = els.list.children;
    for (var i = 0; i < items.length; i++) {
      if (Number(items[i].dataset.procedure) > n) { els.list.insertBefore(li, items[i]); return; }
    }
    els.list.appendChild(li);
  }

  function removeCard(n) {
    var card = state.cards.get(n);
    if (!card) return;
    card.li.remove();
    state.cards.delete(n);
  }

  function renderList(list) {
    var seen = new Set();
    list.forEach(function (st) {
      if (!st || typeof st.procedure !== 'number') return;
      seen.add(st.procedure);
      renderCard(st);
    });
    Array.from(state.cards.keys()).forEach(function (n) { if (!seen.has(n)) removeCard(n); });
    els.empty.hidden = state.cards.size > 0;
  }

  function cardOf(target) {
    var li = target.closest('li.procedure');
    return li ? {li: li, n: Number(li.dataset.procedure)} : null;
  }

  function setBusy(li, busy) {
    li.classList.toggle('busy', busy);
    li.setAttribute('aria-busy', busy ? 'true' : 'false');
    var buttons = li.querySelectorAll('button');
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = busy || !state.selfService;
  }

  var ACTION_DONE = {
    pause: 'Synchronisation en pause. Les tables et la position de lecture sont conservées.',
    resume: 'Synchronisation reprise là où elle s\u2019était arrêtée.',
    resync: 'Resynchronisation lancée : tous les dossiers vont être relus depuis DS et réécrits dans Grist.',
  };
  var ACTION_PENDING = {
    pause: 'Mise en pause…', resume: 'Reprise…', resync: 'Resynchronisation…', disconnect: 'Déconnexion…',
  };

  function onCardClick(ev) {
    var button = ev.target.closest('button[data-action]');
    if (!button || button.disabled) return;
    var c = cardOf(button);
    var action = button.dataset.action;
    var confirmBox = c.li.querySelector('[data-role="confirm"]');
    if (action === 'disconnect') {
      confirmBox.hidden = false;
      confirmBox.querySelector('[data-action="confirm-disconnect"]').focus();
      return;
    }
    if (action === 'cancel-disconnect') {
      confirmBox.hidden = true;
      c.li.querySelector('[data-action="disconnect"]').focus();
      return;
    }
    if (action === 'confirm-disconnect') action = 'disconnect';
    runAction(c.li, c.n, action);
  }

  function onCardKey(ev) {
    if (ev.key !== 'Escape') return;
    var box = ev.target.closest('[data-role="confirm"]');
    if (!box || box.hidden) return;
    box.hidden = true;
    box.closest('li').querySelector('[data-action="disconnect"]').focus();
  }

  function runAction(li, n, action) {
    var msg = li.querySelector('[data-role="message"]');
    var confirmBox = li.querySelector('[data-role="confirm"]');
    show(msg, ACTION_PENDING[action], '');
    setBusy(li, true);
    var req = action === 'disconnect' ? api('DELETE', 'procedures/' + n)
                                      : api('POST', 'procedures/' + n + '/' + action);
    return req.then(function (r) {
      if (action === 'disconnect') {
        removeCard(n);
        els.empty.hidden = state.cards.size > 0;
        show(els.notice, 'Démarche n° ' + n + ' déconnectée : sa synchronisation est arrêtée et son jeton DS ' +
             'effacé. Ses tables restent dans le document.', 'ok');
        els.proceduresTitle.focus();
        return;
      }
      confirmBox.hidden = true;
      setBusy(li, false);
      if (r.data && typeof r.data.procedure === 'number') renderCard(r.data);
      show(msg, ACTION_DONE[action], 'ok');
      var again = li.querySelector('[data-action="' + (action === 'pause' ? 'resume' : action === 'resume' ? 'pause' : action) + '"]');
      if (again && !again.hidden) again.focus();
    }, function (e) {
      setBusy(li, false);
      confirmBox.hidden = true;
      showRefusal(msg, e, n);
      if (e.code === 'not_connected') refresh();
    });
  }

  /* ---------- connect ---------- */

  function fieldError(input, text) {
    input.setAttribute('aria-invalid', 'true');
    show(els.connectMessage, text, 'error');
    input.focus();
  }

  function onConnect(ev) {
    ev.preventDefault();
    if (els.connectButton.disabled) return;
    [els.number, els.token, els.prefix].forEach(function (i) { i.removeAttribute('aria-invalid'); });
    var numText = els.number.value.replace(/[\s\u00a0\u202f]/g, '');
    if (!/^[0-9]{1,10}$/.test(numText) || Number(numText) < 1 || Number(numText) > PROCEDURE_MAX) {
      fieldError(els.number, 'Indiquez le numéro de la démarche : un nombre entier, par exemple 41235.');
      return;
    }
    var prefix = els.prefix.value.trim();
    if (prefix && !/^[A-Z][A-Za-z0-9_]{0,63}$/.test(prefix)) {
      fieldError(els.prefix, 'Le nom de la table commence par une majuscule, suivie de lettres sans accents, ' +
                 'de chiffres ou de « _ » (64 caractères au plus).');
      return;
    }
    if (!els.token.value.trim()) {
      fieldError(els.token, "Collez le jeton d'API DS de la démarche.");
      return;
    }
    if (!/^[\x21-\x7e]{1,512}$/.test(els.token.value.trim())) {
      fieldError(els.token, "Ce jeton d'API DS n'a pas la forme attendue : collez-le tel que DS l'a affiché, sans espace.");
      return;
    }
    var n = Number(numText);
    var body = {procedure: n, ds_token: els.token.value.trim()};
    if (prefix) body.table_prefix = prefix;
    /* The token leaves the page with this request: the field is emptied now, whatever the answer. */
    els.token.value = '';
    setConnectBusy(true);
    show(els.connectMessage, 'Vérifications en cours : votre accès au document, puis la démarche sur DS…', '');
    var req = api('POST', 'procedures', body);
    body = null;
    req.then(function (r) {
      var a = r.data || {};
      if (a.demarche && a.demarche.title) state.titles.set(n, String(a.demarche.title));
      var tables = Array.isArray(a.tables) ? a.tables : [];
      show(els.connectMessage, 'Démarche n° ' + n + (a.demarche && a.demarche.title ? ' « ' + a.demarche.title + ' »' : '') +
           ' connectée. ' + (tables.length ? (tables.length > 1 ? 'Tables : ' : 'Table : ') + tables.join(', ') + '. ' : '') +
           'Les premiers dossiers arrivent dans quelques secondes.', 'ok');
      els.number.value = '';
      els.prefix.value = '';
      renderCard({procedure: n, document: a.document, source: a.source || 'registry', state: a.state || 'active',
                  table_prefix: tables[0] || prefix || null, created_at: a.created_at || null,
                  sync: {last_sync_at: null, dossiers: null, last_error: null}});
      els.empty.hidden = state.cards.size > 0;
      refresh();
    }, function (e) {
      showRefusal(els.connectMessage, e, n);
      if (e.code === 'ds_token_refused') els.token.focus();
      else if (e.code === 'ds_procedure_not_found' || e.code === 'already_connected') els.number.focus();
    }).then(function () { setConnectBusy(false); });
  }

  function setConnectBusy(busy) {
    els.connectButton.disabled = busy || !state.selfService;
    els.form.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  /* ---------- polling ---------- */

  function refresh() {
    if (state.refreshing) return state.refreshing;
    state.refreshing = api('GET', 'procedures').then(function (r) {
      state.noAccess = false;
      globalError('');
      renderList((r.data && r.data.procedures) || []);
      els.pollStatus.textContent = 'Mis à jour à ' + new Date().toLocaleTimeString('fr-FR') + '.';
      return 0;
    }, function (e) {
      if (e.code === 'no_access') {
        state.noAccess = true;
        globalError(e.message);
      } else {
        els.pollStatus.textContent = 'Mise à jour impossible (' + new Date().toLocaleTimeString('fr-FR') + ') : ' +
          refusalText(e, 0);
      }
      return e.retryAfter ? e.retryAfter * 1000 : 0;
    }).then(function (wait) {
      state.refreshing = null;
      return wait;
    });
    return state.refreshing;
  }

  function schedule(ms) {
    clearTimeout(state.timer);
    state.timer = setTimeout(tick, ms);
  }

  function tick() {
    if (document.hidden) { schedule(POLL_MS); return; }
    refresh().then(function (wait) { schedule(Math.max(POLL_MS, wait || 0)); });
  }

  /* ---------- start ---------- */

  function start() {
    ['global-status', 'global-error', 'procedures', 'procedures-title', 'procedures-empty', 'procedure-list',
     'poll-status', 'connect', 'connect-form', 'procedure-number', 'ds-token', 'table-prefix', 'connect-button',
     'connect-message', 'share-hint', 'self-service-off', 'procedure-template', 'app'].forEach(function (id) {
      els[id.replace(/-([a-z])/g, function (m, c) { return c.toUpperCase(); })] = document.getElementById(id);
    });
    els.notice = els.globalStatus;
    els.empty = els.proceduresEmpty;
    els.list = els.procedureList;
    els.template = els.procedureTemplate;
    els.form = els.connectForm;
    els.number = els.procedureNumber;
    els.token = els.dsToken;
    els.prefix = els.tablePrefix;
    els.proceduresTitle.tabIndex = -1;
    els.form.addEventListener('submit', onConnect);

    api('GET', 'info', undefined, false).then(function (r) {
      state.info = r.data || {};
      return loadPluginApi(state.info.grist_servers);
    }).then(function () {
      window.grist.ready({requiredAccess: 'full'});
      if (typeof window.grist.onOptions === 'function') {
        window.grist.onOptions(function (options, interaction) {
          if (interaction && interaction.accessLevel && interaction.accessLevel !== 'full') {
            state.noAccess = true;
            globalError(NO_ACCESS_TEXT);
          }
        });
      }
      var info = state.info;
      state.selfService = info.self_service !== false;
      if (info.platform_account) {
        els.shareHint.textContent = 'Avant de connecter une démarche, partagez ce document avec le compte ' +
          info.platform_account + ' en tant qu\u2019éditeur : c\u2019est lui qui écrit les dossiers dans Grist.';
        els.shareHint.hidden = false;
      }
      els.procedures.hidden = false;
      els.connect.hidden = !state.selfService;
      els.selfServiceOff.hidden = state.selfService;
      els.globalStatus.textContent = '';
      els.app.setAttribute('aria-busy', 'false');
      setConnectBusy(false);
      return refresh();
    }).then(function () {
      schedule(POLL_MS);
      document.addEventListener('visibilitychange', function () { if (!document.hidden) schedule(0); });
    }).catch(function (e) {
      els.app.setAttribute('aria-busy', 'false');
      els.globalStatus.textContent = '';
      globalError(e instanceof WidgetError ? e.message : fallbackText(0));
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
