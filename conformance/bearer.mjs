// Preload for the conformance suite (node --import): every HTTP request it makes carries
// "Authorization: Bearer $CONFORMANCE_BEARER". The suite's server scenarios have no header option;
// its fetch() and undici.request() both go through undici's global dispatcher, which this wraps.
import { Agent, setGlobalDispatcher } from "undici";

const token = process.env.CONFORMANCE_BEARER;
if (token) {
  const withBearer = (dispatch) => (opts, handler) => {
    const headers = [];
    const h = opts.headers;
    if (Array.isArray(h)) headers.push(...h);
    else if (h && typeof h[Symbol.iterator] === "function") for (const [k, v] of h) headers.push(k, v);
    else if (h) for (const [k, v] of Object.entries(h)) headers.push(k, v);
    const has = headers.some((v, i) => i % 2 === 0 && String(v).toLowerCase() === "authorization");
    if (!has) headers.push("authorization", `Bearer ${token}`);
    return dispatch({ ...opts, headers }, handler);
  };
  setGlobalDispatcher(new Agent().compose(withBearer));
}
