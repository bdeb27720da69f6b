// oma-server admin web UI: progressive enhancement only. Every form works
// without this file; it adds list refresh, relative times, the pairing
// code countdown, copy buttons and confirm dialogs.
(function () {
  'use strict';

  var body = document.body;
  var serverNow = Date.parse(body.getAttribute('data-server-now') || '');
  // Times are compared with the server's clock, not the browser's.
  var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();
  function now() { return Date.now() + skew; }

  function human(ms) {
    var s = Math.floor(ms / 1000);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm';
    if (s < 48 * 3600) return Math.floor(s / 3600) + 'h';
    return Math.floor(s / 86400) + 'd';
  }

  function updateRelative(root) {
    (root || document).querySelectorAll('time[data-rel]').forEach(function (el) {
      var t = Date.parse(el.getAttribute('datetime'));
      if (isNaN(t)) return;
      var d = now() - t;
      el.textContent = d >= 0 ? human(d) + ' ago' : 'in ' + human(-d);
    });
  }

  // Elements that only work with JavaScript are hidden in the HTML.
  document.querySelectorAll('[data-js-only]').forEach(function (el) { el.hidden = false; });

  // --- pairing code countdown ---
  var countdowns = [];
  document.querySelectorAll('[data-countdown]').forEach(function (el) {
    var left = parseInt(el.getAttribute('data-remaining'), 10);
    if (isNaN(left)) return;
    countdowns.push({ el: el, deadline: performance.now() + left * 1000 });
  });
  function pad(n) { return n < 10 ? '0' + n : '' + n; }
  function tickCountdowns() {
    countdowns.forEach(function (c) {
      var left = Math.max(0, Math.ceil((c.deadline - performance.now()) / 1000));
      if (left > 0) {
        var h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
        c.el.textContent = 'expires in ' + (h > 0 ? h + ':' + pad(m) : m) + ':' + pad(s);
      } else {
        c.el.textContent = 'expired';
        var card = c.el.closest('[data-code-card]');
        if (card) {
          card.classList.add('expired');
          var note = card.querySelector('[data-expired-note]');
          if (note) note.hidden = false;
        }
      }
    });
  }
  if (countdowns.length) {
    tickCountdowns();
    setInterval(tickCountdowns, 1000);
  }

  // --- copy buttons ---
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(function () { return true; }, function () { return false; });
    }
    return Promise.resolve(false);
  }
  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest('button[data-copy]');
    if (!btn) return;
    var src = document.getElementById(btn.getAttribute('data-copy'));
    if (!src) return;
    var label = btn.getAttribute('data-label') || btn.textContent;
    btn.setAttribute('data-label', label);
    copyText(src.textContent.trim()).then(function (ok) {
      if (!ok) {
        selectText(src);
        ok = document.execCommand && document.execCommand('copy');
      }
      btn.textContent = ok ? 'Copied' : 'Selected: press Ctrl+C';
      setTimeout(function () { btn.textContent = label; }, 2500);
    });
  });

  // --- bulk selection on the pending list (docs/fleet.md) ---
  // Select all; select by label (k=v and k!=v, comma-separated, matched
  // against each row's labels); and remember which bulk button was pressed,
  // since the confirm dialog submits the form without its submitter.
  document.addEventListener('change', function (ev) {
    if (!ev.target.matches('[data-select-all]')) return;
    document.querySelectorAll('input[data-select]').forEach(function (c) { c.checked = ev.target.checked; });
  });
  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest('button');
    if (!btn) return;
    // (form.id would name the checkboxes called "id": read the attribute.)
    if (btn.form && btn.form.getAttribute('id') === 'bulk' && btn.name === 'action') {
      btn.form.querySelector('input[name="bulk_action"]').value = btn.value;
      return;
    }
    if (!btn.matches('[data-select-labels]')) return;
    var want = (document.getElementById('bulk-selector').value || '').split(',').map(function (s) { return s.trim(); }).filter(Boolean);
    document.querySelectorAll('tr[data-labels]').forEach(function (row) {
      var have = {};
      (row.getAttribute('data-labels') || '').split(',').forEach(function (kv) {
        var i = kv.indexOf('=');
        if (i > 0) have[kv.slice(0, i)] = kv.slice(i + 1);
      });
      var ok = want.length > 0 && want.every(function (req) {
        var neg = req.indexOf('!=');
        if (neg > 0) return have[req.slice(0, neg).trim()] !== req.slice(neg + 2).trim();
        var eq = req.indexOf('=');
        if (eq > 0) return have[req.slice(0, eq).trim()] === req.slice(eq + 1).replace(/^=/, '').trim();
        return Object.prototype.hasOwnProperty.call(have, req);
      });
      var box = row.querySelector('input[data-select]');
      if (box) box.checked = ok;
    });
  });

  // --- confirm dialogs ---
  var dialog = document.getElementById('confirm-dialog');
  var pendingForm = null;
  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (!form.matches('form[data-confirm]') || !dialog || typeof dialog.showModal !== 'function') return;
    if (form.elements.confirmed && form.elements.confirmed.value === '1') return;
    ev.preventDefault();
    pendingForm = form;
    document.getElementById('confirm-title').textContent = form.getAttribute('data-confirm');
    var text = form.getAttribute('data-confirm-text') || '';
    var field = form.querySelector('input[name="notes"], input[name="reason"]');
    if (field && field.value.trim() !== '') {
      text += ' ' + (field.name === 'notes' ? 'Notes' : 'Reason') + ': "' + field.value.trim() + '".';
    }
    document.getElementById('confirm-text').textContent = text;
    var ok = document.getElementById('confirm-ok');
    ok.textContent = form.getAttribute('data-confirm-label') || 'Confirm';
    ok.className = form.hasAttribute('data-danger') ? 'danger' : 'primary';
    dialog.returnValue = '';
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  });
  if (dialog) {
    dialog.addEventListener('close', function () {
      var form = pendingForm;
      pendingForm = null;
      if (dialog.returnValue !== 'ok' || !form) return;
      form.elements.confirmed.value = '1';
      form.querySelectorAll('button').forEach(function (b) { b.disabled = true; });
      form.submit();
    });
  }

  // --- list refresh (short polling of /ui/state) ---
  if (!body.hasAttribute('data-signed-in')) return;
  var interval = parseInt(body.getAttribute('data-poll-ms'), 10) || 3000;
  var status = document.getElementById('poll-status');
  var headers = { 'X-OMA-Background': '1' };

  function signedOut() {
    location.href = '/signin?ended=1&next=' + encodeURIComponent(location.pathname + location.search);
  }

  function get(url) {
    return fetch(url, { headers: headers, credentials: 'same-origin', cache: 'no-store' }).then(function (res) {
      if (res.status === 401) {
        signedOut();
        throw new Error('signed out');
      }
      if (!res.ok) throw new Error('HTTP ' + res.status);
      return res;
    });
  }

  function busy(region) {
    if (dialog && dialog.open) return true;
    var a = document.activeElement;
    if (a && a !== body && region.contains(a)) return true;
    return Array.prototype.some.call(region.querySelectorAll('input:not([type="hidden"])'), function (i) {
      return i.type === 'checkbox' ? i.checked : i.value !== '';
    });
  }

  function refreshRegion(region) {
    var url = new URL(location.href);
    url.searchParams.set('region', region.getAttribute('data-region'));
    return get(url.toString()).then(function (res) { return res.text(); }).then(function (html) {
      var tpl = document.createElement('template');
      tpl.innerHTML = html.trim();
      var fresh = tpl.content.querySelector('[data-region]');
      if (!fresh || !region.isConnected) return;
      region.replaceWith(fresh);
      updateRelative(fresh);
    });
  }

  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest('button[data-refresh]');
    if (!btn) return;
    var region = btn.closest('[data-region]');
    if (region) refreshRegion(region).catch(function () {});
  });

  function poll() {
    if (document.hidden) {
      setTimeout(poll, interval);
      return;
    }
    get('/ui/state').then(function (res) { return res.json(); }).then(function (st) {
      status.hidden = true;
      var badge = document.querySelector('[data-count="pending"]');
      if (badge && st.pending) {
        badge.textContent = st.pending.count;
        badge.setAttribute('aria-label', st.pending.count + ' waiting');
        badge.classList.toggle('badge-on', st.pending.count > 0);
      }
      var jobs = [];
      document.querySelectorAll('[data-region]').forEach(function (region) {
        var s = st[region.getAttribute('data-region')];
        var stale = region.querySelector('[data-stale]');
        if (!s || s.version === region.getAttribute('data-version')) {
          if (stale) stale.hidden = true;
          return;
        }
        if (busy(region)) {
          if (stale) stale.hidden = false;
          return;
        }
        jobs.push(refreshRegion(region));
      });
      return Promise.all(jobs);
    }).catch(function (err) {
      if (err && err.message === 'signed out') return;
      status.textContent = 'Lost contact with oma-server; retrying.';
      status.hidden = false;
    }).then(function () {
      setTimeout(poll, interval);
    });
  }

  updateRelative();
  setInterval(updateRelative, 15000);
  setTimeout(poll, interval);
})();
