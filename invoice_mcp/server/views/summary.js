/* summarize_invoices: the ledger at a glance. Balance owed, the aging buckets as bars, top
   customers by balance, drafts and archived apart, the as-of date and what was counted. */
"use strict";
(function () {
  var h = UI.h, money = UI.money;
  var BUCKETS = [["current", "Not yet due"], ["1-30", "1\u201330 days"], ["31-60", "31\u201360 days"],
                 ["61-90", "61\u201390 days"], ["90+", "90+ days"]];

  function owed(b) { return b ? (b.balance !== undefined ? b.balance : b.total) : 0; }

  /* A headline amount: the figure large, its currency small beside it (one text: "$1.00 USD"). */
  function amount(field, value, cur) {
    var text = money(value, cur), cut = text.lastIndexOf(" ");
    return h("div", { className: "big", "data-field": field }, [
      h("span", { text: cut > 0 ? text.slice(0, cut) : text }),
      cut > 0 ? h("span", { className: "unit", text: text.slice(cut) }) : null]);
  }

  function plural(n) { return n + " invoice" + (n === 1 ? "" : "s"); }

  function draw(s) {
    var cur = s.currency || "USD";
    var aging = s.aging || {};
    var max = 0;
    BUCKETS.forEach(function (b) { max = Math.max(max, Number(owed(aging[b[0]])) || 0); });
    var bars = h("div", { className: "bars", role: "list", "aria-label": "Balance owed by days past due" });
    BUCKETS.forEach(function (b, i) {
      var bucket = aging[b[0]] || { count: 0, total: 0 };
      var value = Number(owed(bucket)) || 0;
      var bar = h("div", { className: "bar" + (i > 0 ? " late" : ""), "aria-hidden": "true" });
      bar.style.width = (max > 0 ? Math.max(1, Math.round(100 * value / max)) : 1) + "%";
      bars.appendChild(h("span", { role: "listitem", text: b[1] }));
      bars.appendChild(h("div", {}, [bar]));
      bars.appendChild(h("span", { className: "num", "data-bucket": b[0], text: money(value) + " (" + bucket.count + ")" }));
    });
    var top = (s.by_customer || []).map(function (c) {
      return h("tr", {}, [h("td", { className: "wrap" }, [UI.data(c.customer || c.customer_id || "?", 80)]),
        h("td", { className: "num", text: String(c.count) }),
        h("td", { className: "num", "data-field": "customer-balance", text: money(c.balance) })]);
    });
    var apart = Object.keys(s.apart || {}).map(function (k) {
      var b = s.apart[k];
      return h("div", { className: "card", "data-apart": UI.clip(k, 32) }, [
        h("div", {}, [UI.data(k, 32), h("span", { className: "muted", text: " \u00b7 not owed" })]),
        h("div", { className: "mid", text: money(b.total) }), h("div", { className: "muted", text: plural(b.count) })]);
    });
    var unknown = Object.keys(s.unknown_statuses || {});
    UI.show([
      h("div", { className: "row spread" }, [
        h("h1", {}, [h("span", { text: "Ledger" }), s.customer ? h("span", { text: " \u00b7 " }) : null,
          s.customer ? UI.data(s.customer, 80) : null]),
        h("span", { className: "muted", "data-role": "as-of", text: "as of " + (s.as_of || "?") })
      ]),
      s.truncated ? UI.note("Partial figures: the count stopped at max_invoices.", "warning") : null,
      s.balances === false ? UI.note("Balances not computed: owed figures are invoice totals.", "warning") : null,
      h("div", { className: "cards" }, [
        h("div", { className: "card" }, [h("div", { text: "Balance owed" }),
          amount("balance", owed(s.unpaid), cur),
          h("div", { className: "muted", text: plural((s.unpaid || {}).count || 0) +
            (s.with_payments ? ", " + s.with_payments + " part paid" : "") })]),
        h("div", { className: "card" }, [h("div", { text: "Invoiced" }),
          amount("total", s.total, cur),
          h("div", { className: "muted", text: plural(s.count || 0) })])
      ].concat(apart)),
      h("h2", { text: "Owed by days past due" }),
      bars,
      top.length ? h("h2", { text: "Top customers by balance" }) : null,
      top.length ? h("div", { className: "scroll" }, [h("table", {}, [
        h("thead", {}, [h("tr", {}, [h("th", { text: "Customer" }), h("th", { className: "num", text: "Invoices" }),
          h("th", { className: "num", text: "Balance" })])]), h("tbody", {}, top)])]) : null,
      unknown.length ? h("p", { className: "warning" }, [h("span", { text: "Unknown statuses counted as owed: " }),
        UI.data(unknown.join(", "), 200)]) : null,
      h("details", {}, [h("summary", { text: "What is counted" }), h("p", { className: "muted", text: s.scope || "", max: 800 })])
    ]);
  }

  Bridge.on("ui/notifications/tool-result", function (r) {
    var err = UI.resultError(r);
    if (err || !r.structuredContent) return UI.show([UI.note(err || "No summary in this result.", "error")]);
    draw(r.structuredContent);
  });
  Bridge.start("invoice-mcp summary").catch(Bridge.showError);
})();
