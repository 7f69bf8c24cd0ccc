// Preload (node --require ./force-loopback.cjs ...) that makes every TCP listener that
// was given no host bind 127.0.0.1 instead of all interfaces. server-everything's
// streamableHttp mode calls app.listen(PORT) and has no option for the bind address.
"use strict";
const net = require("node:net");
const HOST = process.env.MCP_TEST_BIND_HOST || "127.0.0.1";
const orig = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const a0 = args[0];
  if (typeof a0 === "number" || (typeof a0 === "string" && /^\d+$/.test(a0))) {
    // listen(port[, host][, backlog][, cb]): insert the host when it is missing.
    if (typeof args[1] !== "string") args.splice(1, 0, HOST);
  } else if (a0 && typeof a0 === "object" && !Array.isArray(a0) && a0.path === undefined && a0.host === undefined
             && a0.fd === undefined && a0._handle === undefined && a0.handle === undefined) {
    args[0] = { ...a0, host: HOST };
  } else if (a0 === undefined || typeof a0 === "function") {
    args.unshift(0, HOST);
  }
  return orig.apply(this, args);
};
