"use strict";
Bridge.on("ui/notifications/tool-result", function (r) {
  var err = UI.resultError(r);
  if (err || !r.structuredContent) return UI.show([UI.note(err || "No invoice in this result.", "error")]);
  UI.show([Card.render(r.structuredContent)]);
});
Bridge.start("invoice-mcp invoice").catch(Bridge.showError);
