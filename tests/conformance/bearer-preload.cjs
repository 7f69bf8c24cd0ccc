// Loaded with `node --require` for the authenticated conformance runs: the suite has no
// header option, so every request it makes, through fetch, undici's request() (the
// DNS-rebinding scenario) or node's http.request() (the newest suite's header-validation
// scenarios), gets `Authorization: Bearer $CONFORMANCE_BEARER`.
// Runs before the suite imports undici, so the suite sees the wrapped request(). undici is
// resolved from the suite's own script (process.argv[1]), not from this file: the stable and the
// newest suite each have their own node_modules, and only the instance the suite loads counts.
const path = require("path");
const token = process.env.CONFORMANCE_BEARER;
if (token) {
  const bearer = `Bearer ${token}`;
  const realFetch = globalThis.fetch;
  globalThis.fetch = (input, init = {}) => {
    const headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
    headers.set("authorization", bearer);
    return realFetch(input, { ...init, headers });
  };
  const undici = require(require.resolve("undici", { paths: [path.dirname(process.argv[1])] }));
  const realRequest = undici.request;
  undici.request = (url, options = {}) => {
    const headers = Array.isArray(options.headers)
      ? [...options.headers, "authorization", bearer]
      : { ...(options.headers || {}), authorization: bearer };
    return realRequest(url, { ...options, headers });
  };
  // http.request(options[, cb]) or http.request(url[, options][, cb]): the suite passes its
  // headers as an object in the options.
  const http = require("http");
  const realHttpRequest = http.request;
  http.request = (...args) => {
    const at = typeof args[0] === "string" || args[0] instanceof URL ? 1 : 0;
    if (typeof args[at] === "function" || args[at] === undefined) args.splice(at, 0, {});
    args[at] = { ...args[at], headers: { ...(args[at].headers || {}), authorization: bearer } };
    return realHttpRequest(...args);
  };
}
