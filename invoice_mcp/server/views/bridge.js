/* The view side of MCP Apps (io.modelcontextprotocol/ui) over postMessage: the
   ui/initialize handshake, tool input/result notifications, host context (theme),
   tools/call and ui/open-link through the host. No network: the host is the only peer. */
"use strict";
var Bridge = (function () {
  var nextId = 1, pending = {}, handlers = {}, context = {}, lastHeight = 0;
  var host = window.parent;

  function post(msg) { host.postMessage(msg, "*"); }

  function request(method, params) {
    var id = nextId++;
    return new Promise(function (resolve, reject) {
      pending[id] = { resolve: resolve, reject: reject };
      post({ jsonrpc: "2.0", id: id, method: method, params: params || {} });
    });
  }

  function notify(method, params) { post({ jsonrpc: "2.0", method: method, params: params || {} }); }

  function on(method, fn) { (handlers[method] = handlers[method] || []).push(fn); }

  function emit(method, params) {
    (handlers[method] || []).forEach(function (fn) {
      try { fn(params || {}); } catch (e) { showError(e); }
    });
  }

  function showError(e) {
    var p = document.createElement("p");
    p.className = "error";
    p.textContent = "View error: " + String(e && e.message || e).slice(0, 300);
    document.body.appendChild(p);
  }

  function applyContext(ctx) {
    if (!ctx || typeof ctx !== "object") return;
    for (var k in ctx) if (Object.prototype.hasOwnProperty.call(ctx, k)) context[k] = ctx[k];
    var theme = context.theme === "dark" ? "dark" : "light";
    document.documentElement.setAttribute("data-theme", theme);
    document.documentElement.style.colorScheme = theme;
    emit("context", context);
  }

  window.addEventListener("message", function (event) {
    if (event.source !== host) return;  // only the host speaks to this view
    var msg = event.data;
    if (!msg || msg.jsonrpc !== "2.0") return;
    if (msg.id !== undefined && msg.method === undefined) {
      var p = pending[msg.id];
      if (!p) return;
      delete pending[msg.id];
      if (msg.error) p.reject(new Error(String(msg.error.message || "request failed")));
      else p.resolve(msg.result);
      return;
    }
    if (msg.method === "ui/notifications/host-context-changed") { applyContext(msg.params); return; }
    if (msg.method === "ui/resource-teardown" && msg.id !== undefined) {
      post({ jsonrpc: "2.0", id: msg.id, result: {} });
      return;
    }
    if (msg.method === "ping" && msg.id !== undefined) { post({ jsonrpc: "2.0", id: msg.id, result: {} }); return; }
    if (typeof msg.method === "string") emit(msg.method, msg.params);
  });

  function reportSize() {
    var h = Math.ceil(document.documentElement.scrollHeight);
    if (h !== lastHeight) {
      lastHeight = h;
      notify("ui/notifications/size-changed", { width: Math.ceil(document.documentElement.scrollWidth), height: h });
    }
  }

  function start(appName) {
    return request("ui/initialize", {
      appInfo: { name: appName, version: "1" },
      appCapabilities: { availableDisplayModes: ["inline"] },
      protocolVersion: "2026-01-26"
    }).then(function (result) {
      applyContext((result && result.hostContext) || {});
      notify("ui/notifications/initialized", {});
      if (window.ResizeObserver) new ResizeObserver(reportSize).observe(document.documentElement);
      reportSize();
      return result;
    });
  }

  function callTool(name, args) {
    return request("tools/call", { name: name, arguments: args || {} });
  }

  function openLink(url) { return request("ui/open-link", { url: url }); }

  return { start: start, on: on, callTool: callTool, openLink: openLink, context: context, showError: showError };
})();
