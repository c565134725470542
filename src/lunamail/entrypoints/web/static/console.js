/* Lunamail console: the little JavaScript the pages need (no inline scripts: CSP). */
(function () {
  "use strict";
  var csrf = document.body.dataset.csrf || "";

  // htmx requests carry the session's CSRF token in a header.
  document.body.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf;
  });
  // Errors from htmx requests land in the alert region (the server retargets them there).
  document.body.addEventListener("htmx:responseError", function (e) {
    var box = document.getElementById("errors");
    if (box && !box.innerHTML) { box.textContent = "The request failed (" + e.detail.xhr.status + ")."; }
  });
  document.body.addEventListener("htmx:beforeRequest", function () {
    var box = document.getElementById("errors");
    if (box) { box.innerHTML = ""; }
  });

  // Forms that change something important ask first.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) { e.preventDefault(); }
  }, true);

  // CodeMirror for the HTML of a campaign; every change autosaves through htmx.
  function codemirror() {
    if (!window.CodeMirror) { return; }
    document.querySelectorAll("textarea[data-codemirror]").forEach(function (ta) {
      var cm = window.CodeMirror.fromTextArea(ta, {
        mode: ta.dataset.codemirror, lineNumbers: true, lineWrapping: true,
        readOnly: ta.closest("fieldset[disabled]") ? "nocursor" : false,
        screenReaderLabel: "HTML of the campaign"
      });
      cm.on("change", function () {
        cm.save();
        ta.dispatchEvent(new Event("cm-change", { bubbles: true }));
      });
      window.lunamailEditor = cm;
    });
  }

  // Preview width: desktop or a 375 px phone.
  function widths() {
    document.querySelectorAll(".widths button").forEach(function (b) {
      b.addEventListener("click", function () {
        var box = document.getElementById("preview-box");
        box.className = b.dataset.width;
        document.querySelectorAll(".widths button").forEach(function (o) {
          o.setAttribute("aria-pressed", String(o === b));
        });
      });
    });
    document.querySelectorAll("select[data-refresh]").forEach(function (sel) {
      sel.addEventListener("change", function () {
        window.htmx.trigger(document.querySelector(sel.dataset.refresh), "cm-change");
      });
    });
    var tz = document.querySelector("[data-local-tz]");
    if (tz && !tz.value) {
      try { tz.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (err) { /* keep empty */ }
    }
  }

  // ------------------------------------------------------------ CSV import
  function parseCsv(text, delim) {
    var rows = [], row = [], field = "", quoted = false, i, c;
    for (i = 0; i < text.length; i++) {
      c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
        else if (c === '"') { quoted = false; }
        else { field += c; }
      } else if (c === '"' && field === "") { quoted = true; }
      else if (c === delim) { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") { i++; }
        row.push(field); rows.push(row); row = []; field = "";
        if (rows.length > 6) { break; }
      } else { field += c; }
    }
    if (field !== "" || row.length) { row.push(field); rows.push(row); }
    return rows;
  }

  function guessDelimiter(line) {
    var best = ",", most = -1;
    [",", ";", "\t", "|"].forEach(function (d) {
      var n = line.split(d).length;
      if (n > most) { most = n; best = d; }
    });
    return best;
  }

  function importer() {
    var root = document.getElementById("import");
    if (!root) { return; }
    var input = document.getElementById("csv-file"), drop = document.getElementById("drop");
    var fields = root.dataset.fields.split(","), file = null, header = [];

    function show(f) {
      file = f;
      f.slice(0, 65536).arrayBuffer().then(function (buf) {
        var text, encoding = "UTF-8";
        try { text = new TextDecoder("utf-8", { fatal: true }).decode(buf); }
        catch (err) { text = new TextDecoder("windows-1252").decode(buf); encoding = "Latin-1"; }
        if (text.charCodeAt(0) === 0xfeff) { text = text.slice(1); }
        var delim = guessDelimiter(text.split(/\r?\n/)[0] || "");
        var rows = parseCsv(text, delim);
        header = rows[0] || [];
        var names = { ",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe" };
        document.getElementById("detected").textContent = f.name + ": " + encoding + ", " + names[delim] +
          " separated, " + header.length + " columns.";
        var map = document.getElementById("mapping");
        map.innerHTML = "";
        header.forEach(function (col, i) {
          var id = "map-" + i, wrap = document.createElement("div");
          var label = document.createElement("label");
          label.htmlFor = id; label.textContent = "Column “" + col + "” goes to";
          var sel = document.createElement("select");
          sel.id = id; sel.dataset.column = col;
          var guess = col.trim().toLowerCase().replace(/[\s_-]+/g, "");
          [""].concat(fields).forEach(function (t) {
            var o = document.createElement("option");
            o.value = t; o.textContent = t ? t : "(automatic)";
            if (t && (t === guess || (t === "email" && (guess === "e-mail" || guess === "mail" || guess === "emailaddress")))) { o.selected = true; }
            sel.appendChild(o);
          });
          wrap.appendChild(label); wrap.appendChild(sel); map.appendChild(wrap);
        });
        var table = document.createElement("table"), head = document.createElement("tr");
        var cap = document.createElement("caption"); cap.className = "sr-only"; cap.textContent = "The first rows of the file";
        table.appendChild(cap);
        header.forEach(function (h) { var th = document.createElement("th"); th.scope = "col"; th.textContent = h; head.appendChild(th); });
        table.appendChild(head);
        rows.slice(1, 6).forEach(function (r) {
          var tr = document.createElement("tr");
          r.forEach(function (v) { var td = document.createElement("td"); td.textContent = v; tr.appendChild(td); });
          table.appendChild(tr);
        });
        var box = document.getElementById("preview-rows"); box.innerHTML = ""; box.appendChild(table);
        document.getElementById("step-map").hidden = false;
      });
    }

    input.addEventListener("change", function () { if (input.files[0]) { show(input.files[0]); } });
    drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
    drop.addEventListener("drop", function (e) {
      e.preventDefault(); drop.classList.remove("over");
      if (e.dataTransfer.files[0]) { show(e.dataTransfer.files[0]); }
    });

    function fail(message) {
      document.getElementById("progress").innerHTML = "";
      var p = document.createElement("p"); p.className = "error"; p.setAttribute("role", "alert");
      p.textContent = message; document.getElementById("progress").appendChild(p);
    }

    function answer(resp) {
      return resp.text().then(function (body) {
        if (resp.ok) { return body ? JSON.parse(body) : {}; }
        var message = "the server answered " + resp.status;
        try { message = JSON.parse(body).error.message; } catch (err) {
          var doc = new DOMParser().parseFromString(body, "text/html"), e = doc.querySelector(".error");
          if (e) { message = e.textContent; }
        }
        throw new Error(message);
      });
    }

    document.getElementById("start-import").addEventListener("click", function () {
      var mapping = {};
      document.querySelectorAll("#mapping select").forEach(function (s) { if (s.value) { mapping[s.dataset.column] = s.value; } });
      document.getElementById("step-progress").hidden = false;
      var headers = { "Content-Type": "application/json", "X-CSRF-Token": csrf };
      fetch("/lists/" + encodeURIComponent(root.dataset.list) + "/imports", {
        method: "POST", headers: headers, credentials: "same-origin",
        body: JSON.stringify({ mapping: mapping, mode: document.getElementById("import-mode").value })
      }).then(answer).then(function (declared) {
        return fetch(declared.upload.url, { method: "PUT", body: file, headers: { "Content-Type": "text/csv" } })
          .then(answer).then(function () { return declared; });
      }).then(function (declared) {
        return fetch("/imports/" + declared.id + "/start", { method: "POST", headers: headers, credentials: "same-origin" })
          .then(answer).then(function () { return declared; });
      }).then(function (declared) {
        var box = document.getElementById("progress");
        box.innerHTML = '<div hx-get="/imports/' + declared.id + '" hx-trigger="load" hx-swap="outerHTML"><p>Starting…</p></div>';
        window.htmx.process(box);
      }).catch(function (err) { fail("The import did not start: " + err.message); });
    });
  }

  // ------------------------------------------------------------ live report
  function pick(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, obj);
  }

  function report() {
    var root = document.getElementById("report");
    if (!root) { return; }
    var live = document.getElementById("r-live"), chart = null;
    function paint(r) {
      root.querySelectorAll("[data-k]").forEach(function (el) {
        var v = pick(r, el.dataset.k);
        if (v === undefined) { return; }
        el.textContent = el.hasAttribute("data-pct") ? (v * 100).toFixed(1) + "%" : String(v);
      });
      document.getElementById("r-progress").value = r.progress || 0;
      var st = document.getElementById("r-status"), status = r.campaign_status || r.status;
      st.textContent = status;
      var controls = document.getElementById("report-actions");
      if (controls && ["sent", "cancelled", "failed"].indexOf(status) >= 0) { controls.hidden = true; }
    }
    function series() {
      fetch(root.dataset.series, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (doc) {
        var items = doc.items || [];
        if (!items.length || !window.uPlot) { return; }
        document.getElementById("chart-empty").hidden = true;
        var data = [items.map(function (i) { return i.minute; }),
          items.map(function (i) { return i.sent || 0; }),
          items.map(function (i) { return i.opens || 0; }),
          items.map(function (i) { return i.clicks || 0; })];
        var box = document.getElementById("chart");
        var width = Math.max(280, box.clientWidth || 600);
        if (chart) { chart.setData(data); return; }
        chart = new window.uPlot({
          width: width, height: 240,
          series: [{}, { label: "sent", stroke: "#0b57d0" }, { label: "opened", stroke: "#1a6b32" }, { label: "clicked", stroke: "#8a5300" }],
          axes: [{}, {}]
        }, data, box);
      }).catch(function () { /* the chart is extra: the counters stay live */ });
    }
    series();
    var timer = window.setInterval(series, 10000);
    if (!window.EventSource) { live.textContent = "live numbers need a newer browser; reload to refresh."; return; }
    var source = new EventSource(root.dataset.live);
    source.addEventListener("report", function (e) {
      paint(JSON.parse(e.data));
      live.textContent = "live";
    });
    source.addEventListener("end", function () {
      live.textContent = "final numbers"; source.close(); window.clearInterval(timer); series();
    });
    source.onerror = function () { live.textContent = "reconnecting…"; };
  }

  function start() { codemirror(); widths(); importer(); report(); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
