/* create_invoice preview (dry_run): the card of what would be created, the duplicate warning
   when the server knows an identical recent invoice, and one Create button that calls the tool
   for real with the same arguments (the server's confirmation and duplicate guard still apply).
   The button is disabled from the first click until the answer, so a double click is one call. */
"use strict";
(function () {
  var h = UI.h, money = UI.money;
  var args = null, done = false;

  function draw(out, meta, input) {
    var lines = (input.line_items || []).map(function (li) {
      var amount = Number(li.amount), qty = Number(li.quantity);
      return h("tr", {}, [h("td", { className: "wrap" }, [UI.data(li.description || "-", 200)]),
        h("td", { className: "num", text: isNaN(qty) ? "?" : String(qty) }),
        h("td", { className: "num", text: money(amount) }),
        h("td", { className: "num", text: isNaN(amount * qty) ? "$?" : money(amount * qty) })]);
    });
    var msg = h("div", { "data-role": "message", "aria-live": "polite" });
    var dup = meta && meta.duplicate;
    var create = UI.button("Create invoice", "create", function (ev) {
      var btn = ev.currentTarget;
      if (btn.disabled || done) return;
      btn.disabled = true;
      UI.clear(msg).appendChild(UI.note("Creating\u2026"));
      var real = {};
      for (var k in input) if (Object.prototype.hasOwnProperty.call(input, k) && k !== "dry_run") real[k] = input[k];
      Bridge.callTool("create_invoice", real).then(function (r) {
        var err = UI.resultError(r);
        var o = r && r.structuredContent || {};
        if (err) { btn.disabled = false; return UI.clear(msg).appendChild(UI.note(err, "error")); }
        if (o.outcome === "created") {
          done = true;
          btn.textContent = "Created";
          UI.clear(msg).appendChild(h("p", { "data-role": "created" }, [
            h("span", { text: "Created " + UI.clip(o.invoice_number || o.invoice_id || "", 64) + " \u00b7 " }),
            UI.badge(o.status), h("span", { text: " \u00b7 " + money(o.total, "USD") })]));
        } else {
          btn.disabled = false;
          UI.clear(msg).appendChild(UI.note(o.message || "Not created.", "warning"));
        }
      }).catch(function (e) { btn.disabled = false; UI.clear(msg).appendChild(UI.note(String(e && e.message || e), "error")); });
    });
    UI.show([
      h("article", { "aria-label": "New invoice preview" }, [
        h("div", { className: "row spread" }, [h("h1", {}, [h("span", { text: "New invoice \u00b7 " }), UI.data(out.customer || input.customer_id || "?", 120)]),
          h("span", { className: "badge badge-warn", text: "preview" })]),
        h("p", { className: "muted", text: "Due " + (out.due_date || input.due_date || "today") +
          " \u00b7 live and payable once created" }),
        dup ? h("p", { className: "warning", role: "alert", "data-role": "duplicate" }, [h("span", { text: "Possible duplicate: " }), UI.data(dup, 600)]) : null,
        h("div", { className: "scroll" }, [h("table", {}, [
          h("thead", {}, [h("tr", {}, [h("th", { text: "Item" }), h("th", { className: "num", text: "Qty" }),
            h("th", { className: "num", text: "Unit" }), h("th", { className: "num", text: "Amount" })])]),
          h("tbody", {}, lines)])]),
        h("p", { className: "row spread" }, [h("strong", { text: "Total" }), h("strong", { "data-field": "total", text: money(out.total, "USD") })]),
        h("div", { className: "row actions" }, [create]),
        msg
      ])
    ]);
  }

  Bridge.on("ui/notifications/tool-input", function (p) { args = (p && p.arguments) || {}; });
  Bridge.on("ui/notifications/tool-result", function (r) {
    var err = UI.resultError(r);
    var out = r && r.structuredContent;
    if (err || !out) return UI.show([UI.note(err || "No preview in this result.", "error")]);
    if (out.outcome !== "preview") return UI.show([UI.note(out.message || "Not a preview.")]);
    draw(out, (r._meta || {})["io.github.invoice-mcp/view"] || {}, args || {});
  });
  Bridge.start("invoice-mcp create").catch(Bridge.showError);
})();
