/*
 * grist-plugin-api.js (test harness) - stands in for Grist's plugin API inside the widget's frame. The
 * browser test serves it at <Grist server>/grist-plugin-api.js, where the widget loads Grist's real one.
 * It offers what the widget uses (grist.ready, grist.onOptions, grist.docApi.getAccessToken) and forwards
 * each call to the parent page (harness.js, the stand-in for Grist) by postMessage, as Grist's own script
 * does over its RPC channel; the parent answers.
 */
(function () {
  'use strict';
  var pending = new Map();
  var seq = 0;
  var optionsCallback = null;

  function call(method, arg) {
    return new Promise(function (resolve, reject) {
      var id = ++seq;
      pending.set(id, {resolve: resolve, reject: reject});
      window.parent.postMessage({d2gHarness: 'call', id: id, method: method, arg: arg}, '*');
    });
  }

  window.addEventListener('message', function (ev) {
    if (ev.source !== window.parent || !ev.data || typeof ev.data !== 'object') return;
    var m = ev.data;
    if (m.d2gHarness === 'reply' && pending.has(m.id)) {
      var p = pending.get(m.id);
      pending.delete(m.id);
      if (m.error) p.reject(new Error(m.error));
      else p.resolve(m.result);
    } else if (m.d2gHarness === 'options' && optionsCallback) {
      optionsCallback(m.options, m.interaction);
    }
  });

  var docApi = {
    getAccessToken: function (options) {
      return call('getAccessToken', {readOnly: !!(options && options.readOnly)});
    },
  };
  window.grist = {
    ready: function (settings) {
      call('ready', {requiredAccess: settings && settings.requiredAccess ? String(settings.requiredAccess) : null});
    },
    onOptions: function (cb) { optionsCallback = cb; },
    onRecord: function () {},
    onRecords: function () {},
    docApi: docApi,
    getAccessToken: docApi.getAccessToken,
  };
})();
