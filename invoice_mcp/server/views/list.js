/* list_invoices: a sortable table of one chunk; Next/Previous call the tool with the chunk's
   cursors (through the host); a row (click, Enter or Space) opens that invoice's card. */
"use strict";
(function () {
  var h = UI.h;
  var COLS = [
    { key: "number", label: "Number" }, { key: "customer", label: "Customer" }, { key: "status", label: "Status" },
    { key: "total", label: "Total", num: true }, { key: "owed", label: "Owed", num: true },
    { key: "created", label: "Created" }, { key: "due", label: "Due" }, { key: "days_late", label: "Late (d)", num: true }
  ];
  /* What the server counts as settled (nothing owed) and apart (neither owed nor settled). */
  var SETTLED = ["paid", "void", "voided", "canceled", "cancelled", "uncollectible", "written_off", "written-off"];
  var APART = ["draft", "archived"];
  var st = { rows: [], sortKey: null, dir: 1, next: null, prev: null, page: 1, args: {}, asOf: "", sum: null, focus: null };

  /* The balance still owed: the chunk's `balances` where it differs from the total, else the
     total of an owed invoice, 0 when settled, nothing for drafts and archived ones. */
  function owed(o, balances) {
    var ref = String(o.number);
    if (balances && Object.prototype.hasOwnProperty.call(balances, ref)) return balances[ref];
    var status = String(o.status || "").toLowerCase();
    if (APART.indexOf(status) >= 0) return null;
    return SETTLED.indexOf(status) >= 0 ? 0 : o.total;
  }

  /* Rows name their customer by position in the chunk's `customers` (each name given once). */
  function objects(out) {
    var cols = out.cols || [], names = out.customers || null;
    return (out.rows || []).map(function (cells) {
      var o = {};
      cols.forEach(function (c, i) { o[c] = cells[i] === undefined ? null : cells[i]; });
      if (names && typeof o.customer === "number") o.customer = names[o.customer] === undefined ? null : names[o.customer];
      o.owed = owed(o, out.balances);
      return o;
    });
  }

  /* A money cell: a number in the chunk's currency, or a string with its own code ("700.00 EUR"). */
  function cash(v) {
    if (typeof v === "string") {
      var m = /^(-?[0-9][0-9,]*(?:\.[0-9]+)?) ([A-Z]{3})$/.exec(v);
      return m ? UI.money(Number(m[1].replace(/,/g, "")), m[2]) : "?";
    }
    return v === null || v === undefined ? "" : UI.money(v, st.currency === "USD" ? "" : st.currency);
  }

  /* Rows are in the structured content, or (INVOICE_MCP_LIST_ROWS=text) in the result's _meta for views. */
  function withRows(r) {
    var out = r.structuredContent || {}, extra = (r._meta || {})["io.github.invoice-mcp/view"];
    if (out.rows || !extra || !extra.rows) return out;
    var merged = {};
    for (var k in out) if (Object.prototype.hasOwnProperty.call(out, k)) merged[k] = out[k];
    merged.cols = extra.cols; merged.rows = extra.rows; merged.customers = extra.customers;
    merged.next_cursor = extra.next_cursor; merged.prev_cursor = extra.prev_cursor;
    merged.hint = null;
    return merged;
  }

  function load(out) {
    st.rows = objects(out);
    st.next = out.next_cursor || null;
    st.prev = out.prev_cursor || null;
    st.asOf = out.as_of || "";
    st.sum = out.sum;
    st.owed = out.owed === undefined ? null : out.owed;
    st.currency = out.currency || "USD";
    if (!out.rows && out.hint) st.note = out.hint; else st.note = null;
  }

  function sorted() {
    if (!st.sortKey) return st.rows.slice();
    var k = st.sortKey, dir = st.dir;
    return st.rows.slice().sort(function (a, b) {
      var x = a[k], y = b[k];
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * dir;
    });
  }

  function page(cursor, delta, btn) {
    if (btn.disabled) return;
    btn.disabled = true;
    var args = { cursor: cursor };
    if (st.args.limit) args.limit = st.args.limit;
    Bridge.callTool("list_invoices", args).then(function (r) {
      var err = UI.resultError(r);
      if (err) { btn.disabled = false; return draw(err); }
      load(withRows(r));
      st.page += delta;
      st.focus = delta > 0 ? "next" : "prev";
      draw();
    }).catch(function (e) { btn.disabled = false; draw(String(e && e.message || e)); });
  }

  function open(ref) {
    UI.show([UI.note("Opening " + UI.clip(ref, 64) + "\u2026")]);
    Bridge.callTool("get_invoice", { invoice: ref }).then(function (r) {
      var err = UI.resultError(r);
      if (err || !r.structuredContent) return draw(err || "No invoice in the answer.");
      UI.show([Card.render(r.structuredContent, { back: function () { st.focus = "row:" + ref; draw(); } })]);
      var back = document.querySelector('[data-action="back"]');
      if (back) back.focus();
    }).catch(function (e) { draw(String(e && e.message || e)); });
  }

  function header() {
    return h("thead", {}, [h("tr", {}, COLS.map(function (c) {
      var active = st.sortKey === c.key;
      var th = h("th", { className: c.num ? "num" : "", scope: "col",
        "aria-sort": active ? (st.dir > 0 ? "ascending" : "descending") : "none" }, [
        h("button", { type: "button", "data-sort": c.key, onclick: function () {
          st.dir = st.sortKey === c.key ? -st.dir : 1;
          st.sortKey = c.key;
          st.focus = "sort:" + c.key;
          draw();
        }, text: c.label + (active ? (st.dir > 0 ? " \u25b2" : " \u25bc") : "") })]);
      return th;
    }))]);
  }

  function row(o) {
    var ref = String(o.number === null ? "?" : o.number);
    var tr = h("tr", { tabindex: "0", "data-action": "open-invoice", "data-ref": UI.clip(ref, 64),
      onclick: function () { open(ref); },
      onkeydown: function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(ref); } } }, [
      h("td", { text: ref, max: 64 }),
      h("td", { className: "clip", title: UI.clip(o.customer || "?", 200) }, [UI.data(o.customer || "?", 80)]),
      h("td", {}, [UI.badge(o.status)]),
      h("td", { className: "num", text: cash(o.total) }),
      h("td", { className: "num", text: cash(o.owed) }),
      h("td", { text: UI.day(o.created) }),
      h("td", { text: UI.day(o.due) }),
      h("td", { className: "num", text: o.days_late ? String(o.days_late) : "" })
    ]);
    return tr;
  }

  function draw(error) {
    var rows = sorted();
    var prev = UI.button("\u2190 Previous", "prev", function (ev) { page(st.prev, -1, ev.currentTarget); }, { className: "secondary" });
    var next = UI.button("Next \u2192", "next", function (ev) { page(st.next, 1, ev.currentTarget); });
    prev.disabled = !st.prev;
    next.disabled = !st.next;
    UI.show([
      h("div", { className: "row spread" }, [
        h("h1", { text: "Invoices" }),
        h("span", { className: "muted", "data-role": "summary", text: rows.length + " on page " + st.page +
          (st.sum !== null && st.sum !== undefined ? " \u00b7 sum " + UI.money(st.sum, st.currency) : "") +
          (st.owed !== null ? " \u00b7 owed " + UI.money(st.owed, st.currency) : "") +
          (st.asOf ? " \u00b7 as of " + st.asOf : "") })
      ]),
      error ? UI.note(error, "error") : null,
      st.note ? UI.note(st.note) : null,
      rows.length ? h("div", { className: "scroll" }, [h("table", {}, [header(), h("tbody", {}, rows.map(row))])])
        : UI.note("No invoices on this page."),
      h("div", { className: "row actions" }, [prev, next, h("span", { className: "muted", text: st.next ? "" : "end of list" })])
    ]);
    var f = st.focus;
    st.focus = null;
    var target = null;
    if (f === "next" || f === "prev") target = document.querySelector('[data-action="' + f + '"]:not(:disabled)') ||
      document.querySelector('[data-action="' + (f === "next" ? "prev" : "next") + '"]:not(:disabled)');
    else if (f && f.indexOf("sort:") === 0) target = document.querySelector('[data-sort="' + f.slice(5) + '"]');
    else if (f && f.indexOf("row:") === 0) {
      var all = document.querySelectorAll('[data-action="open-invoice"]');
      for (var i = 0; i < all.length; i++) if (all[i].getAttribute("data-ref") === f.slice(4)) target = all[i];
    }
    if (target) target.focus();
  }

  Bridge.on("ui/notifications/tool-input", function (p) { st.args = (p && p.arguments) || {}; });
  Bridge.on("ui/notifications/tool-result", function (r) {
    var err = UI.resultError(r);
    if (err) return UI.show([UI.note(err, "error")]);
    load(withRows(r));
    draw();
  });
  Bridge.start("invoice-mcp invoices").catch(Bridge.showError);
})();
