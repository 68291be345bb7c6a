/* Airlock: the few live parts of the server-rendered pages. Plain JavaScript, no build step.
 * Everything user-supplied is written with textContent (never innerHTML). */
(function () {
  "use strict";

  var POLL_MS = 2500;
  var FINISHED_POLL_MS = 5000;
  var FINAL = ["IMPORTED", "PARTIAL", "FAILED", "REJECTED", "NO_TRADES", "ROLLED_BACK", "PURGED"];
  var ROW_FINAL = ["MIGRATED", "FAILED", "SKIPPED", "DUPLICATE", "REJECTED"];
  var FORMAT_LABELS = { PENDING: "Pending approval", APPROVED: "Approved", REJECTED: "Rejected" };
  // What a staged row's status means to the person who uploaded it.
  var ROW_LABELS = { PENDING: "Pending approval", APPROVED: "Approved, importing", MIGRATING: "Importing",
                     MIGRATED: "Imported", FAILED: "Invalid", SKIPPED: "Skipped", DUPLICATE: "Duplicate",
                     REJECTED: "Rejected" };
  var MOVING = ["UPLOADED", "PROCESSING", "MIGRATING"];

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function fmt(n) { return Number(n || 0).toLocaleString("en-US"); }
  function csrf() {
    var input = $("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }
  function setStatus(el, code, label, prefix) {
    if (!el) return;
    el.textContent = label;
    el.className = el.className.replace(new RegExp("\\b" + (prefix || "status-") + "[a-z_]+", "g"), "").trim() +
      " " + (prefix || "status-") + code.toLowerCase();
  }
  function setBar(bar, pct) {
    if (!bar) return;
    var p = Math.max(0, Math.min(100, Math.round(pct || 0)));
    bar.setAttribute("aria-valuenow", String(p));
    var fill = bar.querySelector("span");
    if (fill) fill.style.width = p + "%";
  }
  /* Poll `fn` every POLL_MS (or every `every()` ms) while it resolves to true; pauses while the tab is hidden. */
  function poll(fn, every) {
    var stopped = false;
    function wait() { return every ? every() : POLL_MS; }
    function tick() {
      if (stopped) return;
      if (document.hidden) { setTimeout(tick, wait()); return; }
      Promise.resolve().then(fn).then(function (again) {
        if (again === false) { stopped = true; return; }
        setTimeout(tick, wait());
      }, function () { setTimeout(tick, wait() * 2); });
    }
    setTimeout(tick, wait());
  }

  /* ---- "how long ago" ------------------------------------------------------------------------ */
  function ago(iso) {
    var s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 45) return "just now";
    if (s < 90) return "a minute ago";
    if (s < 3600) return Math.round(s / 60) + " minutes ago";
    if (s < 5400) return "an hour ago";
    if (s < 86400) return Math.round(s / 3600) + " hours ago";
    if (s < 172800) return "yesterday";
    return Math.round(s / 86400) + " days ago";
  }
  function refreshTimes() {
    $all("time[data-timeago]").forEach(function (t) {
      var iso = t.getAttribute("datetime");
      if (iso) t.textContent = ago(iso);
    });
  }

  /* ---- staging banner (every page) -------------------------------------------------------- */
  function banner() {
    var el = $("#staging-banner");
    if (!el) return;
    var text = $("#staging-banner-text");
    poll(function () {
      return getJSON(el.getAttribute("data-poll")).then(function (data) {
        var rows = data.waiting.rows, files = data.waiting.files;
        el.hidden = rows === 0;
        text.textContent = "";
        var b1 = document.createElement("b"); b1.textContent = fmt(rows);
        var b2 = document.createElement("b"); b2.textContent = fmt(files);
        text.append(b1, " row" + (rows === 1 ? "" : "s") + " from ", b2, " file" + (files === 1 ? "" : "s") +
          (rows === 1 ? " is" : " are") + " waiting for an admin to approve their format.");
      });
    });
  }

  /* ---- a file row (upload page, my imports) ----------------------------------------------- */
  function updateFileRow(tr, f) {
    tr.setAttribute("data-status", f.status);
    setStatus($("[data-field=status]", tr), f.status, f.status_display);
    var cells = { total: f.rows.total, imported: f.rows.imported, staged: f.rows.staged,
                  skipped: f.rows.skipped, duplicate: f.rows.duplicate, invalid: f.rows.invalid };
    Object.keys(cells).forEach(function (k) {
      var td = $("[data-field=" + k + "]", tr);
      if (td) td.textContent = fmt(cells[k]);
    });
    var invalid = $("[data-field=invalid]", tr);
    if (invalid) invalid.classList.toggle("bad", f.rows.invalid > 0);
    var format = $("[data-field=format]", tr);
    if (format) { format.textContent = f.format ? f.format.name : "—"; format.title = f.format ? f.format.name : ""; }
    var error = $("[data-field=error]", tr);
    if (error) { error.textContent = f.error || ""; error.hidden = !f.error; }
    setBar($(".bar", tr), f.progress);
    var pct = $("[data-field=progress]", tr);
    if (pct) pct.textContent = f.status === "PENDING_APPROVAL" ? "Waiting" : Math.round(f.progress) + "%";
    var updated = $("[data-field=updated]", tr);
    if (updated && f.updated_at) updated.setAttribute("datetime", f.updated_at);
  }
  function isLive(status) { return FINAL.indexOf(status) === -1; }

  /* Poll /api/uploads?ids=… for the rows still moving; calls back after each update. */
  function liveFiles(root, api, after) {
    poll(function () {
      var ids = [];
      $all("tr[data-file-id]", root).forEach(function (tr) {
        var id = tr.getAttribute("data-file-id");
        if (isLive(tr.getAttribute("data-status")) && ids.indexOf(id) === -1) ids.push(id);
      });
      if (!ids.length) return true;  // keep the loop: the upload page adds rows later
      return getJSON(api + "?page_size=500&ids=" + ids.join(",")).then(function (data) {
        data.results.forEach(function (f) {
          // Every row of that file: identical files in one upload are one import shown on several rows.
          $all("tr[data-file-id='" + f.id + "']", root).forEach(function (tr) { updateFileRow(tr, f); });
        });
        if (after) after();
      });
    });
  }

  /* ---- an upload (batch): state, processing bar, files done, row totals ---------------------- */
  var BATCH_LIVE = ["PENDING", "PROCESSING", "WAITING"];
  function filesDoneText(b) {
    return fmt(b.files.finished) + " of " + fmt(b.files.count) + " file" + (b.files.count === 1 ? "" : "s") + " done" +
      (b.files.waiting ? " · " + fmt(b.files.waiting) + " waiting for approval" : "");
  }
  function updateBatch(el, b) {
    el.setAttribute("data-status", b.status);
    setStatus($("[data-batch=status]", el), b.status, b.status_display, "status-batch-");
    setBar($(".batch-bar", el), b.progress);
    var files = $("[data-batch=files]", el);
    if (files) {
      files.textContent = "";
      var strong = document.createElement("b"); strong.textContent = fmt(b.files.finished);
      files.append(strong, filesDoneText(b).slice(fmt(b.files.finished).length));
    }
    Object.keys(b.rows).forEach(function (k) {
      var dd = $("[data-total=" + k + "]", el);
      if (dd) dd.textContent = fmt(b.rows[k]);
    });
  }
  function liveBatches() {
    var els = $all("[data-batch-live]");
    if (!els.length) return;
    poll(function () {
      var live = els.filter(function (el) { return BATCH_LIVE.indexOf(el.getAttribute("data-status")) !== -1; });
      if (!live.length) return false;
      return Promise.all(live.map(function (el) {
        return getJSON(el.getAttribute("data-poll")).then(function (b) { updateBatch(el, b); });
      })).then(function () { return true; });
    });
  }

  /* ---- my imports, an upload's page ------------------------------------------------------- */
  function importsPage() {
    var root = $("#imports-live");
    if (!root) return;
    liveFiles(root, root.getAttribute("data-poll"));
    liveBatches();
  }

  /* ---- file detail ------------------------------------------------------------------------ */
  function detailPage() {
    var root = $("#file-live");
    if (!root) return;
    var invalidTile = $(".tiles [data-field=invalid]");
    var hadInvalid = !!invalidTile && Number(invalidTile.textContent.replace(/,/g, "")) > 0;
    // A finished file can still change (an admin rolls it back, a retry): checked every FINISHED_POLL_MS.
    poll(function () {
      return getJSON(root.getAttribute("data-poll")).then(function (f) {
        var was = root.getAttribute("data-status");
        setStatus($("#file-status"), f.status, f.status_display);
        ["total", "imported", "staged", "skipped", "duplicate", "invalid"].forEach(function (k) {
          var el = $(".tiles [data-field=" + k + "]");
          if (el) el.textContent = fmt(f.rows[k]);
        });
        var accounting = $("#row-accounting");
        if (accounting && f.accounting) accounting.textContent = f.accounting;
        var big = $(".bar-lg");
        setBar(big, f.progress);
        if (big) big.hidden = MOVING.indexOf(f.status) === -1;
        var err = $("#file-error");
        if (err) { err.textContent = f.error || ""; err.hidden = !f.error || !!f.rolled_back; }
        rollbackNote(f.rolled_back);
        if (f.format) setStatus($("[data-field=format-status]"), f.format.status,
                                FORMAT_LABELS[f.format.status] || f.format.status, "status-fmt-");
        var pending = $("#pending-note");
        if (pending && f.status !== "PENDING_APPROVAL") pending.hidden = true;
        root.setAttribute("data-status", f.status);
        // The invalid-rows table and the download are rendered by the server: fetch them once, when the
        // file has just finished with invalid rows.
        if (isLive(was) && !isLive(f.status) && f.rows.invalid > 0 && !hadInvalid) window.location.reload();
        return f.status !== "PURGED";
      });
    }, function () { return isLive(root.getAttribute("data-status")) ? POLL_MS : FINISHED_POLL_MS; });
  }

  function rollbackNote(info) {
    var note = $("#rollback-note");
    if (!note) return;
    note.hidden = !info;
    if (!info) return;
    $("[data-field=rollback-by]", note).textContent = info.by;
    var at = $("[data-field=rollback-at]", note);
    at.setAttribute("datetime", info.at);
    at.textContent = new Date(info.at).toLocaleString();
    $("[data-field=rollback-summary]", note).textContent = fmt(info.deleted) + " order" + (info.deleted === 1 ? "" : "s") +
      " removed from production" + (info.kept ? ", " + fmt(info.kept) + " changed order" + (info.kept === 1 ? "" : "s") + " kept" : "") + ".";
    $("[data-field=rollback-reason]", note).textContent = info.reason || "(none given)";
  }

  /* ---- staged rows ------------------------------------------------------------------------ */
  function stagedPage() {
    var root = $("#staged-live");
    if (!root) return;
    poll(function () {
      var ids = $all("tr[data-row-id]", root).filter(function (tr) {
        return ROW_FINAL.indexOf(tr.getAttribute("data-status")) === -1;
      }).map(function (tr) { return tr.getAttribute("data-row-id"); });
      var fileIds = $all("section[data-file-id]", root).filter(function (s) {
        return isLive(s.getAttribute("data-status"));
      }).map(function (s) { return s.getAttribute("data-file-id"); });
      if (!ids.length && !fileIds.length) return false;
      var none = Promise.resolve({ results: [] });
      return Promise.all([
        ids.length ? getJSON(root.getAttribute("data-poll") + "?page_size=500&ids=" + ids.join(",")) : none,
        fileIds.length ? getJSON(root.getAttribute("data-files-poll") + "?page_size=500&ids=" + fileIds.join(",")) : none,
      ]).then(function (res) {
        res[1].results.forEach(function (f) {
          var section = $("section[data-file-id='" + f.id + "']", root);
          if (section) stagedFileUpdate(section, f);
        });
        var found = {};
        res[0].results.forEach(function (row) {
          found[row.id] = true;
          var tr = $("tr[data-row-id='" + row.id + "']", root);
          if (!tr) return;
          tr.setAttribute("data-status", row.status);
          setStatus($("[data-field=row-status]", tr), row.status, ROW_LABELS[row.status] || row.status_display,
                    "status-row-");
          var err = $("[data-field=row-error]", tr);
          if (err && row.status === "FAILED" && row.errors && row.errors.length) {
            err.textContent = row.errors.map(function (e) { return (e.field || "row") + ": " + e.message; }).join("; ");
            err.hidden = false;
          }
        });
        // A migrated row leaves the staging table (its order holds it): a row gone from a settled file's
        // staged rows was imported.
        ids.forEach(function (id) {
          var tr = $("tr[data-row-id='" + id + "']", root);
          var section = tr && tr.closest("section[data-file-id]");
          if (found[id] || !section || isLive(section.getAttribute("data-status"))) return;
          tr.setAttribute("data-status", "MIGRATED");
          setStatus($("[data-field=row-status]", tr), "MIGRATED", ROW_LABELS.MIGRATED, "status-row-");
        });
        return true;
      });
    });
  }

  function stagedFileUpdate(section, f) {
    section.setAttribute("data-status", f.status);
    setStatus($("[data-field=file-status]", section), f.status, f.status_display);
    var waiting = $("[data-field=waiting]", section);
    if (waiting) waiting.textContent = fmt(f.rows.staged) + " row" + (f.rows.staged === 1 ? "" : "s") + " waiting";
    var note = $("[data-field=decision]", section);
    if (!note || f.status === "PENDING_APPROVAL") return;
    var text;
    if (f.status === "REJECTED") {
      text = f.error || "An admin rejected this file's format: its rows will not be imported.";
      note.className = "alert decision alert-error";
    } else if (f.status === "NO_TRADES") {
      text = f.error || "This file holds no trades: nothing was imported.";
      note.className = "alert decision alert-info";
    } else if (isLive(f.status)) {
      text = "An admin approved this file's format. Importing its rows…";
      note.className = "alert decision alert-info";
    } else {
      text = "An admin approved this file's format: " + fmt(f.rows.imported) + " imported, " + fmt(f.rows.invalid) +
        " invalid, " + fmt(f.rows.skipped) + " skipped, " + fmt(f.rows.duplicate) + " duplicate.";
      note.className = "alert decision " + (f.status === "FAILED" ? "alert-error" : "alert-success");
    }
    note.textContent = text + " ";
    var link = document.createElement("a");
    link.href = $("h2 a", section).getAttribute("href");
    link.textContent = "See the file";
    note.appendChild(link);
    note.hidden = false;
  }

  /* ---- upload ----------------------------------------------------------------------------- */
  function uploadPage() {
    var form = $("#upload-form");
    if (!form || !window.FormData || !window.XMLHttpRequest) return;  // the plain form still works
    var input = $("input[type=file]", form);
    var zone = $("#dropzone");
    var picked = $("#picked");
    var clear = $("#clear-button");
    var card = $("#uploads-card");
    var tbody = $("#upload-results tbody");
    var requests = $("#requests");
    var queue = [];
    var maxFiles = Number(form.getAttribute("data-max-files")) || 500;
    var maxBytes = Number(form.getAttribute("data-max-bytes")) || 0;
    var detailUrl = form.getAttribute("data-detail-url");
    var batchUrl = form.getAttribute("data-batch-api");
    var batchPageUrl = form.getAttribute("data-batch-url");
    var counter = 0;

    function size(n) {
      if (n < 1024) return n + " B";
      if (n < 1048576) return (n / 1024).toFixed(1) + " KB";
      return (n / 1048576).toFixed(1) + " MB";
    }
    function render() {
      picked.textContent = "";
      queue.forEach(function (file, i) {
        var li = document.createElement("li");
        var name = document.createElement("span"); name.className = "picked-name"; name.textContent = file.name;
        var meta = document.createElement("span"); meta.className = "muted small"; meta.textContent = size(file.size);
        var remove = document.createElement("button");
        remove.type = "button"; remove.className = "link-button"; remove.textContent = "Remove";
        remove.setAttribute("aria-label", "Remove " + file.name);
        remove.addEventListener("click", function () { queue.splice(i, 1); render(); });
        li.append(name, meta, remove);
        if (maxBytes && file.size > maxBytes) {
          li.classList.add("too-big");
          meta.textContent = size(file.size) + " — over the " + size(maxBytes) + " limit";
        }
        picked.appendChild(li);
      });
      picked.hidden = queue.length === 0;
      clear.hidden = queue.length === 0;
      $("#upload-button").textContent = queue.length ? "Upload " + queue.length + " file" + (queue.length === 1 ? "" : "s") : "Upload";
    }
    function add(files) {
      Array.prototype.forEach.call(files, function (f) { queue.push(f); });
      render();
    }
    input.addEventListener("change", function () { add(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach(function (ev) {
      zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.add("dragging"); });
    });
    ["dragleave", "drop"].forEach(function (ev) {
      zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (e) { if (e.dataTransfer) add(e.dataTransfer.files); });
    clear.addEventListener("click", function () { queue = []; render(); });

    function fileRow(f) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-file-id", f.id);
      // Fetched at least once even when it already ended (an earlier upload of the same bytes).
      tr.setAttribute("data-status", "UPLOADED");
      var cells = [
        ["file-name", null], ["", "status"], ["num", "total"], ["num", "imported"], ["num", "staged"], ["num", "invalid"], ["", null],
      ];
      cells.forEach(function (c, i) {
        var td = document.createElement("td");
        if (c[0]) td.className = c[0];
        if (i === 0) {
          var a = document.createElement("a");
          a.href = detailUrl.replace(/0\/$/, f.id + "/"); a.textContent = f.name;
          td.appendChild(a);
          if (f.existing) {
            var note = document.createElement("div"); note.className = "muted small";
            note.textContent = "Already uploaded before: showing that import.";
            td.appendChild(note);
          }
          var err = document.createElement("div"); err.className = "error small"; err.hidden = true;
          err.setAttribute("data-field", "error"); td.appendChild(err);
        } else if (c[1] === "status") {
          var s = document.createElement("span"); s.className = "status status-" + f.status.toLowerCase();
          s.setAttribute("data-field", "status"); s.textContent = "Queued"; td.appendChild(s);
        } else if (c[1]) {
          td.setAttribute("data-field", c[1]); td.textContent = "0";
        } else {
          var cell = document.createElement("div"); cell.className = "progress-cell";
          var bar = document.createElement("div"); bar.className = "bar"; bar.setAttribute("role", "progressbar");
          bar.appendChild(document.createElement("span"));
          var pct = document.createElement("span"); pct.className = "small muted"; pct.setAttribute("data-field", "progress");
          pct.textContent = "0%";
          cell.append(bar, pct);
          td.appendChild(cell);
        }
        tr.appendChild(td);
      });
      return tr;
    }

    /* One upload request's box: label, bar, state line (and, for direct uploads, one line per file). */
    function requestBox(files) {
      counter += 1;
      card.hidden = false;
      var box = document.createElement("div"); box.className = "request";
      var label = document.createElement("div"); label.className = "request-label";
      label.textContent = "Upload " + counter + ": " + files.length + " file" + (files.length === 1 ? "" : "s");
      var bar = document.createElement("div"); bar.className = "bar bar-request"; bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-label", label.textContent); bar.appendChild(document.createElement("span"));
      var state = document.createElement("div"); state.className = "request-state small muted"; state.textContent = "Starting…";
      box.append(label, bar, state);
      requests.prepend(box);
      return { n: counter, box: box, label: label, bar: bar, state: state, files: files };
    }
    function failed(req, message) {
      req.box.classList.add("failed");
      req.state.className = "request-state small error";
      req.state.textContent = message;
    }
    /* The upload was accepted (202): its files' rows, then the bar follows their processing. */
    function accepted(req, body, before) {
      setBar(req.bar, 0);
      req.label.textContent = "Upload " + req.n + " (#" + body.batch + "): " + req.files.length + " file" + (req.files.length === 1 ? "" : "s");
      req.state.textContent = "Received. Processing…";
      // Rows of this upload first, in the order the files were sent.
      var rows = (before || []).concat(body.files);
      for (var i = rows.length - 1; i >= 0; i--) tbody.prepend(fileRow(rows[i]));
      follow(body.batch, req.box, req.bar, req.state);
    }

    /* Through the web server: one multipart request with every file. */
    function send(files) {
      var req = requestBox(files);
      var data = new FormData();
      files.forEach(function (f) { data.append("file", f, f.name); });
      data.append("dedupe", dedupe() ? "1" : "0");
      data.append("target", target());
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("data-api"));
      xhr.setRequestHeader("X-CSRFToken", csrf());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        setBar(req.bar, 100 * e.loaded / e.total);
        req.state.textContent = size(e.loaded) + " of " + size(e.total) + " sent";
      });
      xhr.addEventListener("load", function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
        if (xhr.status === 202 && body) accepted(req, body);
        else failed(req, body && body.message ? body.message : "The upload failed (HTTP " + xhr.status + "). Please try again.");
      });
      xhr.addEventListener("error", function () {
        failed(req, "The connection was lost before the upload finished. Please try again.");
      });
      xhr.send(data);
    }
    function dedupe() { return $("input[name=dedupe]", form).checked; }
    function target() { var t = $("select[name=target]", form); return t ? t.value : "orders"; }

    /* ---- straight to the bucket: sign, send each file (4 at a time, per-file progress), confirm ---- */
    var directUrl = form.getAttribute("data-direct");
    var confirmUrl = form.getAttribute("data-direct-confirm");
    // SHA-256 in the browser needs WebCrypto, which browsers give only to secure pages (https, localhost).
    var canDirect = !!(directUrl && window.crypto && window.crypto.subtle && window.fetch && window.Blob && Blob.prototype.arrayBuffer);

    function postJSON(url, body) {
      return fetch(url, {
        method: "POST", credentials: "same-origin", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
      }).then(function (r) {
        return r.json().catch(function () { return null; }).then(function (b) { return { status: r.status, body: b }; });
      });
    }
    function hex(buffer) {
      return Array.prototype.map.call(new Uint8Array(buffer), function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    }
    function sha256(file) {
      return file.arrayBuffer().then(function (buf) { return crypto.subtle.digest("SHA-256", buf); }).then(hex);
    }
    function fileLine(list, name) {
      var li = document.createElement("li");
      var n = document.createElement("span"); n.className = "picked-name"; n.textContent = name;
      var b = document.createElement("div"); b.className = "bar"; b.setAttribute("role", "progressbar");
      b.setAttribute("aria-label", name); b.appendChild(document.createElement("span"));
      var st = document.createElement("span"); st.className = "small muted"; st.textContent = "waiting";
      li.append(n, b, st);
      list.appendChild(li);
      return { li: li, bar: b, state: st };
    }
    function toBucket(item, file, line, progress) {
      return new Promise(function (resolve) {
        var data = new FormData();
        Object.keys(item.upload.fields).forEach(function (k) { data.append(k, item.upload.fields[k]); });
        data.append("file", file, file.name);  // the policy's fields first, the file last
        var xhr = new XMLHttpRequest();
        xhr.open("POST", item.upload.url);
        xhr.upload.addEventListener("progress", function (e) {
          if (!e.lengthComputable) return;
          setBar(line.bar, 100 * e.loaded / e.total);
          progress(e.loaded);
        });
        xhr.addEventListener("load", function () { resolve(xhr.status >= 200 && xhr.status < 300 ? "" : "refused by the storage (HTTP " + xhr.status + ")"); });
        xhr.addEventListener("error", function () { resolve("the connection to the storage was lost"); });
        line.state.textContent = "sending";
        xhr.send(data);
      });
    }
    function sendDirect(files) {
      var req = requestBox(files);
      var list = document.createElement("ul"); list.className = "direct-files";
      req.box.appendChild(list);
      var hashes = [];
      var chain = Promise.resolve();
      files.forEach(function (f, i) {
        chain = chain.then(function () {
          req.state.textContent = "Checking " + (i + 1) + " of " + files.length + " files…";
          return sha256(f).then(function (h) { hashes.push(h); });
        });
      });
      chain.then(function () {
        req.state.textContent = "Asking for upload addresses…";
        return postJSON(directUrl, {
          dedupe: dedupe(),
          target: target(),
          files: files.map(function (f, i) { return { name: f.name, size: f.size, sha256: hashes[i] }; }),
        });
      }).then(function (answer) {
        if (answer.status === 404 && answer.body && answer.body.error === "direct_uploads_off") {
          req.box.remove(); counter -= 1; send(files); return;  // the bucket was turned off: through the server
        }
        if (answer.status !== 200 || !answer.body) {
          failed(req, answer.body && answer.body.message ? answer.body.message : "The upload failed (HTTP " + answer.status + "). Please try again.");
          return;
        }
        var items = answer.body.files;
        var before = [];
        var todo = [];
        var total = 0;
        items.forEach(function (item, i) {
          if (item.existing) { before.push(item.existing); return; }
          todo.push({ item: item, file: files[i], line: fileLine(list, item.name), loaded: 0 });
          total += item.size;
        });
        var problems = [];
        function progress() {
          var sent = todo.reduce(function (a, t) { return a + t.loaded; }, 0);
          setBar(req.bar, total ? 100 * sent / total : 100);
          req.state.textContent = size(sent) + " of " + size(total) + " sent to the storage";
        }
        function one(t, attempt) {
          return toBucket(t.item, t.file, t.line, function (n) { t.loaded = n; progress(); }).then(function (problem) {
            if (problem && attempt < 2) { t.loaded = 0; return one(t, attempt + 1); }  // once more: a blip
            t.line.state.textContent = problem ? problem : "sent";
            t.line.li.classList.add(problem ? "failed" : "done");
            if (problem) problems.push(t.item.name + ": " + problem);
            else t.ok = true;
          });
        }
        var next = 0;
        function worker() {
          if (next >= todo.length) return Promise.resolve();
          var t = todo[next++];
          return one(t, 1).then(worker);
        }
        var lanes = [];
        for (var k = 0; k < Math.min(4, todo.length); k++) lanes.push(worker());
        return Promise.all(lanes).then(function () {
          var keys = todo.filter(function (t) { return t.ok; }).map(function (t) { return t.item.key; });
          if (!keys.length) {
            if (before.length) { accepted(req, { batch: before[0].batch, files: [] }, before); return; }
            failed(req, "No file reached the storage (" + problems.join("; ") + "). Please try again.");
            return;
          }
          req.state.textContent = "Confirming…";
          return postJSON(confirmUrl, { keys: keys }).then(function (done) {
            if (done.status !== 202 || !done.body) {
              failed(req, done.body && done.body.message ? done.body.message : "The upload could not be confirmed (HTTP " + done.status + "). Please try again.");
              return;
            }
            list.remove();
            accepted(req, done.body, before);
            if (problems.length) {
              var warn = document.createElement("div"); warn.className = "error small";
              warn.textContent = problems.length + " file" + (problems.length === 1 ? "" : "s") + " could not be sent and " +
                (problems.length === 1 ? "is" : "are") + " not part of this upload — upload " + (problems.length === 1 ? "it" : "them") +
                " again: " + problems.join("; ");
              req.box.appendChild(warn);
            }
          });
        });
      }).catch(function (err) {
        failed(req, "The upload failed (" + (err && err.message ? err.message : "network error") + "). Please try again.");
      });
    }

    /* After the bytes are sent, the same bar follows the processing of the upload's files. */
    function follow(batchId, box, bar, state) {
      var url = batchUrl.replace(/0$/, String(batchId)) + "?items=0";
      var link = document.createElement("a");
      link.href = batchPageUrl.replace(/0\/$/, batchId + "/");
      link.textContent = "Open this upload";
      poll(function () {
        return getJSON(url).then(function (b) {
          setBar(bar, b.progress);
          var r = b.rows;
          var figures = fmt(r.imported) + " rows imported" + (r.staged ? ", " + fmt(r.staged) + " waiting for approval" : "") +
            (r.invalid ? ", " + fmt(r.invalid) + " invalid" : "");
          var live = b.status === "PENDING" || b.status === "PROCESSING";
          box.setAttribute("data-batch-status", b.status);
          state.textContent = (live ? "Processing: " : b.status_display + ": ") + filesDoneText(b) + " · " + figures + ". ";
          state.appendChild(link);
          if (!live) box.classList.add(b.status === "FAILED" ? "failed" : "done");
          return live;
        });
      });
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!queue.length) { input.click(); return; }
      var files = queue.slice();
      queue = []; render();
      for (var i = 0; i < files.length; i += maxFiles) (canDirect ? sendDirect : send)(files.slice(i, i + maxFiles));
    });
    liveFiles($("#upload-results"), form.getAttribute("data-api"));
  }

  document.addEventListener("DOMContentLoaded", function () {
    banner();
    importsPage();
    detailPage();
    stagedPage();
    uploadPage();
    refreshTimes();
    setInterval(refreshTimes, 30000);
  });
})();
