/* Shared helpers: every string that comes from data is set with textContent (never as markup),
   isolated for bidi and clipped for display; money is shown as the text view shows it. */
"use strict";
var UI = (function () {
  var MAX = 300;

  function clip(value, max) {
    var s = value === null || value === undefined ? "" : String(value);
    max = max || MAX;
    return s.length > max ? s.slice(0, max - 1) + "\u2026" : s;
  }

  function h(tag, props, children) {
    var el = document.createElement(tag);
    props = props || {};
    for (var k in props) {
      if (!Object.prototype.hasOwnProperty.call(props, k) || props[k] === undefined || props[k] === null) continue;
      if (k === "text") el.textContent = clip(props[k], props.max);
      else if (k === "max") continue;
      else if (k === "className") el.className = props[k];
      else if (k === "onclick") el.addEventListener("click", props[k]);
      else if (k === "onkeydown") el.addEventListener("keydown", props[k]);
      else if (k === "disabled") el.disabled = !!props[k];
      else el.setAttribute(k, String(props[k]));
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return el;
  }

  /* Customer text (names, memos, descriptions, statuses): inert text in an isolated run. */
  function data(value, max) { return h("bdi", { className: "data", text: value, max: max }); }

  function money(value, currency) {
    if (value === null || value === undefined || value === "" || isNaN(Number(value))) return "$?";
    var n = Number(value), neg = n < 0;
    var cents = Math.round(Math.abs(n) * 100);
    var whole = String(Math.floor(cents / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var frac = String(cents % 100);
    if (frac.length < 2) frac = "0" + frac;
    var sym = !currency || currency === "USD" ? "$" : "";  /* as the text: other currencies by their code only */
    var text = (neg ? "-" : "") + sym + whole + "." + frac;
    return currency ? text + " " + clip(currency, 8) : text;
  }

  /* 20261123 (a list cell) or "2026-11-23..." -> "2026-11-23"; anything else as given, clipped. */
  function day(value) {
    if (value === null || value === undefined || value === "") return "-";
    var s = String(value);
    if (/^\d{8}$/.test(s)) return s.slice(0, 4) + "-" + s.slice(4, 6) + "-" + s.slice(6, 8);
    if (/^\d{4}-\d{2}-\d{2}/.test(s)) return s.slice(0, 10);
    return clip(s, 32);
  }

  var KNOWN = { paid: "ok", open: "info", overdue: "bad", partially_paid: "warn", draft: "quiet",
                archived: "quiet", void: "quiet", cancelled: "quiet", uncollectible: "bad" };

  function badge(status) {
    var s = clip(status || "?", 32);
    var kind = KNOWN[s.toLowerCase()] || "info";
    return h("span", { className: "badge badge-" + kind, text: s });
  }

  function button(label, action, onclick, extra) {
    var b = h("button", { type: "button", "data-action": action, text: label, onclick: onclick,
                          className: (extra && extra.className) || "" });
    return b;
  }

  function resultError(result) {
    if (!result) return "no answer from the host";
    if (!result.isError) return null;
    var parts = (result.content || []).map(function (c) { return c && c.type === "text" ? c.text : ""; });
    return clip(parts.join(" ") || "the tool failed", 600);
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

  function root() { return document.getElementById("app"); }

  function show(children) {
    var r = clear(root());
    children.forEach(function (c) { if (c) r.appendChild(c); });
  }

  function note(text, kind) { return h("p", { className: kind || "muted", text: text, role: kind === "error" ? "alert" : null }); }

  return { h: h, data: data, money: money, day: day, badge: badge, button: button, clip: clip,
           resultError: resultError, clear: clear, root: root, show: show, note: note };
})();
