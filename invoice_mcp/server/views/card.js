/* The invoice card (get_invoice's structured content): status, lines, totals, payments as a
   timeline, balance due; actions payment link (opened by the host), archive (through its tool,
   so the server's confirmation applies) and restore. Used by the invoice view and by the list
   view when a row is opened. */
"use strict";
var Card = (function () {
  var h = UI.h, money = UI.money;

  function render(d, opts) {
    opts = opts || {};
    var cur = d.currency || "USD";
    var ref = d.invoice_number || d.id || "?";
    var status = h("p", { className: "row", "data-role": "status" }, [UI.badge(d.status)]);
    var msg = h("div", { "data-role": "message", "aria-live": "polite" });
    var lines = h("table", {}, [
      h("thead", {}, [h("tr", {}, [h("th", { text: "Item" }), h("th", { className: "num", text: "Qty" }),
        h("th", { className: "num", text: "Unit" }), h("th", { className: "num", text: "Amount" })])]),
      h("tbody", {}, (d.line_items || []).map(function (li) {
        return h("tr", {}, [h("td", { className: "wrap" }, [UI.data(li.description || "-", 200)]),
          h("td", { className: "num", text: li.quantity === undefined || li.quantity === null ? "?" : li.quantity }),
          h("td", { className: "num", text: money(li.amount) }),
          h("td", { className: "num", text: money(li.line_total) })]);
      }))
    ]);
    var totals = h("table", { className: "totals" }, [h("tbody", {}, [
      d.sub_total !== undefined && d.sub_total !== d.total
        ? h("tr", {}, [h("td", { text: "Subtotal" }), h("td", { className: "num", text: money(d.sub_total, cur) })]) : null,
      h("tr", {}, [h("td", { text: "Total" }), h("td", { className: "num", "data-field": "total", text: money(d.total, cur) })]),
      d.amount_paid !== undefined
        ? h("tr", {}, [h("td", { text: "Paid" }), h("td", { className: "num", "data-field": "paid", text: money(d.amount_paid, cur) })]) : null,
      h("tr", {}, [h("td", {}, [h("strong", { text: "Balance due" })]),
        h("td", { className: "num" }, [h("strong", { "data-field": "balance",
          text: d.balance_due === undefined ? "unknown" : money(d.balance_due, cur) })])])
    ])]);
    var pays = null;
    if (d.payments_unavailable) pays = UI.note("Payments unavailable: " + d.payments_unavailable, "warning");
    else if (d.payments && d.payments.length) {
      pays = h("ol", { className: "timeline", "aria-label": "Payments" }, d.payments.map(function (p) {
        var failed = (p.status || "") === "failed";
        return h("li", { className: failed ? "failed" : "" }, [
          h("span", { text: UI.day(p.created_at) + " \u00b7 " }), UI.data(p.method || "?", 32),
          h("span", { text: " \u00b7 " }), UI.data(p.status || "?", 32),
          h("span", { text: " \u00b7 " + money(p.amount, cur) + (p.charged !== undefined ? " (charged " + money(p.charged) + ")" : "") })
        ]);
      }));
    } else if (d.payments) pays = UI.note("No payments yet.");
    var actions = h("div", { className: "row actions" });
    var state = { archived: (d.status || "") === "archived" };

    function say(text, kind) { UI.clear(msg).appendChild(UI.note(text, kind)); }

    function setStatus(s) { UI.clear(status).appendChild(UI.badge(s)); }

    function busy(btn, fn) {
      if (btn.disabled) return;
      btn.disabled = true;
      Promise.resolve().then(fn).catch(function (e) { say(String(e && e.message || e), "error"); })
        .then(function () { btn.disabled = false; });
    }

    function payLink(ev) {
      var btn = ev.currentTarget;
      busy(btn, function () {
        return Bridge.callTool("get_invoice_payment_link", { invoice: d.id || ref }).then(function (r) {
          var err = UI.resultError(r);
          if (err) return say(err, "error");
          var out = r.structuredContent || {};
          if (!/^https:\/\//.test(String(out.url || ""))) return say("The payment link is not an https link; not opened.", "error");
          if (out.warning) say(out.warning, "warning");
          return Bridge.openLink(out.url).then(function () { if (!out.warning) say("Payment link opened by the host."); });
        });
      });
    }

    function change(tool, ev) {
      var btn = ev.currentTarget;
      busy(btn, function () {
        return Bridge.callTool(tool, { invoice: d.id || ref }).then(function (r) {
          var err = UI.resultError(r);
          if (err) return say(err, "error");
          var out = r.structuredContent || {};
          if (out.outcome === "archived") { state.archived = true; setStatus(out.status || "archived"); say("Archived. Restore brings it back."); }
          else if (out.outcome === "restored") { state.archived = false; setStatus(out.status); say("Restored."); }
          else say(out.message || "Unchanged.");
          drawActions();
        });
      });
    }

    function drawActions() {
      UI.clear(actions);
      if (opts.back) actions.appendChild(UI.button("Back to list", "back", opts.back, { className: "secondary" }));
      if (!state.archived) actions.appendChild(UI.button("Payment link", "payment-link", payLink));
      if (opts.writes !== false) {
        actions.appendChild(state.archived
          ? UI.button("Restore", "restore", function (ev) { change("restore_invoice", ev); })
          : UI.button("Archive", "archive", function (ev) { change("archive_invoice", ev); }, { className: "secondary" }));
      }
    }
    drawActions();

    return h("article", { className: "invoice", "aria-label": "Invoice " + UI.clip(ref, 64) }, [
      h("div", { className: "row spread" }, [h("h1", {}, [h("span", { text: ref + " \u00b7 " }), UI.data(d.customer || d.customer_id || "?", 120)]), status]),
      h("p", { className: "muted", text: "Created " + UI.day(d.created_at) + " \u00b7 due " + UI.day(d.due_date) +
        (d.paid_at ? " \u00b7 paid " + UI.day(d.paid_at) : "") }),
      h("div", { className: "scroll" }, [lines]),
      totals,
      pays ? h("h2", { text: "Payments" }) : null,
      pays,
      d.memo ? h("p", {}, [h("span", { className: "muted", text: "Memo: " }), UI.data(d.memo, 500)]) : null,
      actions,
      msg
    ]);
  }

  return { render: render };
})();
