/* kriselogg: a report typed with no network is kept on the phone and sent when the network is
   back (issue 16). Without this script the form posts as it always has. With it, the report is
   kept in localStorage before it is sent, and removed once the server has it; one that cannot
   reach the server is sent on the `online` event, or when the start page or the report form is
   opened next. The form's report_id is the incident's id, so a report sent twice (the answer to
   the first was lost on the way) still opens one incident. */
(function () {
  "use strict";

  var OFFLINE = "Ingen nettverk – meldingen er lagret på telefonen og sendes når nettet er tilbake.";
  var SENDING = "Sender meldingen …";
  var PENDING = "En melding som er lagret på telefonen, sendes nå.";
  var FAILED = "Meldingen kom ikke fram, fordi kriselogg svarer med en feil. Den er lagret på " +
    "telefonen: trykk «Send meldingen» igjen om litt, eller ring lederen din.";
  var LOGIN = "Du må logge inn igjen. Meldingen er lagret på telefonen og sendes når du er " +
    "logget inn.";
  var RECEIPT = /^\/hendelser\/[0-9a-f-]{36}\/kvittering$/;

  var status = document.querySelector("[data-draft-scope]");
  if (!status || !window.fetch || !window.URLSearchParams) {
    return;
  }
  // One person's kept reports: on a shared phone, another login never sends them as its own.
  var prefix = "kriselogg.melding." + status.getAttribute("data-draft-scope") + ".";
  var form = document.querySelector("form[data-report-form]");
  var memory = {}; // where localStorage is refused (private mode, full): kept while the page is
  var busy = {};

  function say(text) {
    status.textContent = text;
    if (status.scrollIntoView) {
      status.scrollIntoView({ block: "nearest" }); // sent from the lower button: bring it up
    }
  }

  function token() {
    var field = document.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  function store() {
    try {
      return window.localStorage;
    } catch (e) {
      return null;
    }
  }

  function drafts() {
    var found = {};
    var local = store();
    var broken = [];
    if (local) {
      for (var i = 0; i < local.length; i++) {
        var key = local.key(i);
        if (key && key.indexOf(prefix) === 0) {
          try {
            var draft = JSON.parse(local.getItem(key));
            found[draft.id] = draft;
          } catch (e) {
            broken.push(key);
          }
        }
      }
      broken.forEach(function (key) { local.removeItem(key); });
    }
    Object.keys(memory).forEach(function (id) { found[id] = memory[id]; });
    return Object.keys(found).map(function (id) { return found[id]; });
  }

  function keep() {
    var fields = [];
    new FormData(form).forEach(function (value, name) {
      if (name !== "csrf_token" && typeof value === "string") {
        fields.push([name, value]);
      }
    });
    var id = form.elements.report_id ? form.elements.report_id.value : "";
    var draft = { id: id || "utkast-" + Date.now(), fields: fields };
    memory[draft.id] = draft;
    try {
      store().setItem(prefix + draft.id, JSON.stringify(draft));
    } catch (e) {
      // Kept in memory only: sent when the network returns, unless the page is closed first.
    }
    return draft;
  }

  function forget(draft) {
    delete memory[draft.id];
    var local = store();
    if (local) {
      local.removeItem(prefix + draft.id);
    }
  }

  // The kept values back into the form, so the server's answer shows what was typed.
  function restore(draft) {
    var given = {};
    draft.fields.forEach(function (f) {
      (given[f[0]] = given[f[0]] || []).push(f[1]);
    });
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.name === "csrf_token" || el.tagName === "BUTTON") {
        return;
      }
      var values = given[el.name] || [];
      if (el.type === "radio" || el.type === "checkbox") {
        el.checked = values.indexOf(el.value) >= 0;
      } else {
        el.value = values.length ? values[0] : "";
      }
    });
  }

  function send(draft) {
    if (busy[draft.id]) {
      return;
    }
    busy[draft.id] = true;
    var body = new URLSearchParams();
    draft.fields.forEach(function (f) { body.append(f[0], f[1]); });
    body.append("csrf_token", token());
    say(SENDING);
    fetch("/meld", {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": token() }
    }).then(function (response) {
      busy[draft.id] = false;
      var path = new URL(response.url).pathname;
      if (RECEIPT.test(path)) {
        forget(draft); // the server has it
        window.location.assign(response.url);
      } else if (path === "/logg-inn") {
        say(LOGIN);
        window.location.assign("/logg-inn?neste=%2Fmeld");
      } else if (response.status >= 500) {
        say(FAILED);
      } else if (form) {
        // Refused as it stands (a field to fix): the server's page says why, as without this
        // script, with what was typed.
        forget(draft);
        restore(draft);
        form.submit();
      } else {
        window.location.assign("/meld"); // where the form can show why; still kept
      }
    }, function () {
      busy[draft.id] = false;
      say(OFFLINE); // still kept: the `online` event sends it
    });
  }

  function sendKept() {
    var all = drafts();
    if (!all.length) {
      return;
    }
    if (!navigator.onLine) {
      say(OFFLINE);
      return;
    }
    say(PENDING);
    all.forEach(send);
  }

  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var draft = keep();
      if (!navigator.onLine) {
        say(OFFLINE);
        return;
      }
      send(draft);
    });
  }
  window.addEventListener("online", sendKept);
  sendKept();
})();
