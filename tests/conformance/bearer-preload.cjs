// Loaded with `node --require` for the authenticated conformance run: the suite has no
// header option, so every request it makes, through fetch or through undici's request()
// (the DNS-rebinding scenario uses the latter), gets `Authorization: Bearer $CONFORMANCE_BEARER`.
// Runs before the suite imports undici, so the suite sees the wrapped request().
const token = process.env.CONFORMANCE_BEARER;
if (token) {
  const bearer = `Bearer ${token}`;
  const realFetch = globalThis.fetch;
  globalThis.fetch = (input, init = {}) => {
    const headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
    headers.set("authorization", bearer);
    return realFetch(input, { ...init, headers });
  };
  const undici = require("undici");
  const realRequest = undici.request;
  undici.request = (url, options = {}) => {
    const headers = Array.isArray(options.headers)
      ? [...options.headers, "authorization", bearer]
      : { ...(options.headers || {}), authorization: bearer };
    return realRequest(url, { ...options, headers });
  };
}
