// The REST API client: every call goes through `request`, which adds the API key and turns error
// bodies ({code, message, hint, details}) into ApiError. The key lives in localStorage and is mirrored
// into a cookie that only the server's media and event-stream routes read (see web/keycookie.py):
// an <img>, a link or an EventSource cannot send the x-api-key header.

const data = document.body.dataset;
export const API = data.api || "/api/v1";
export const keysRequired = data.keysRequired === "true";
export const thumbSmall = Number(data.thumbSmall || 256);
export const thumbLarge = Number(data.thumbLarge || 1024);

const KEY_STORE = "photoindex.apiKey";
const COOKIE = "photoindex_key";
const KEY_CHARS = /^[A-Za-z0-9_\-.~]+$/;

export function getKey() {
  try {
    return localStorage.getItem(KEY_STORE) || "";
  } catch {
    return "";  // storage disabled: the UI still works where no key is needed
  }
}

export function validKey(key) {
  return key.length > 0 && key.length <= 200 && KEY_CHARS.test(key);
}

function writeCookie(key) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  const life = key ? "Max-Age=31536000" : "Max-Age=0";
  document.cookie = `${COOKIE}=${key}; Path=${API}/; ${life}; SameSite=Strict${secure}`;
}

export function setKey(key) {
  if (key) {
    localStorage.setItem(KEY_STORE, key);
  } else {
    localStorage.removeItem(KEY_STORE);
  }
  writeCookie(key);
}

// Keep the cookie in step with storage (another tab may have changed the key).
export function syncKeyCookie() {
  const key = getKey();
  if (key && validKey(key)) writeCookie(key);
}

// True when the server wants a key and this browser has none: pages then ask for one instead of
// sending requests that can only be refused.
export function keyMissing() {
  return keysRequired && !getKey();
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = body && body.code ? body.code : "http_" + status;
    this.hint = body ? body.hint : undefined;
    this.details = body && body.details ? body.details : {};
  }
}

function urlFor(path, query) {
  const url = new URL(API + path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  return url.pathname + url.search;
}

export async function request(method, path, { query, json, form, signal, key } = {}) {
  const headers = { Accept: "application/json" };
  const secret = key !== undefined ? key : getKey();
  if (secret) headers["x-api-key"] = secret;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;  // FormData: the browser writes the multipart boundary
  }
  const response = await fetch(urlFor(path, query), { method, headers, body, signal, cache: "no-cache" });
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { message: text.slice(0, 200) };
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, parsed);
    if (response.status === 401) document.dispatchEvent(new CustomEvent("photoindex:unauthorized", { detail: error }));
    throw error;
  }
  return parsed;
}

export const api = {
  get: (path, query, options = {}) => request("GET", path, { ...options, query }),
  post: (path, json, options = {}) => request("POST", path, { ...options, json }),
  put: (path, json, options = {}) => request("PUT", path, { ...options, json }),
  upload: (path, form, query, options = {}) => request("POST", path, { ...options, form, query }),
  del: (path, options = {}) => request("DELETE", path, options),
};

export const thumbUrl = (id, size = thumbSmall) => `${API}/assets/${id}/thumbnail?size=${size}`;
export const eventsUrl = (jobId) => `${API}/jobs/${jobId}/events`;
