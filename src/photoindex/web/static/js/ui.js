// Small DOM helpers shared by the pages: element building, notices, formatting, keyboard, drop zones.
import { keyMissing, syncKeyCookie } from "./api.js";

export const $ = (selector, root = document) => root.querySelector(selector);

// h("a", {href: "/", class: "btn"}, "text", childNode): attributes set as properties when the element
// has one (so `hidden: true` and `onclick` work), otherwise as attributes. Never parses HTML.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function notice(...content) {
  const box = $("#notice");
  if (!box) return;
  box.replaceChildren(...content);
  box.hidden = content.length === 0;
}

let toastTimer = 0;
export function toast(message, kind = "info") {
  const box = $("#toast");
  if (!box) return;
  box.textContent = message;
  box.dataset.kind = kind;
  box.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("show"), 4000);
}

export function errorText(error) {
  if (!error) return "";
  const hint = error.hint ? ` — ${error.hint}` : "";
  return `${error.message || String(error)}${hint}`;
}

// Show an error in a status element (or as a toast); aborted requests are not errors.
export function showError(error, where) {
  if (error && error.name === "AbortError") return;
  if (error && error.status === 401) return;  // the notice about the key says it already
  if (where) {
    where.textContent = errorText(error);
    where.dataset.kind = "error";
  } else {
    toast(errorText(error), "error");
  }
}

export function setStatus(where, message, kind = "info") {
  where.textContent = message;
  where.dataset.kind = kind;
}

// Capture times are wall-clock times as the camera recorded them: shown as they are, never shifted
// into the browser's time zone.
export function formatTaken(iso) {
  if (!iso) return "";
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/.exec(iso);
  if (!match) return iso;
  return `${match[1]} ${match[2]}${match[3] ? ` (UTC${match[3] === "Z" ? "" : match[3]})` : ""}`;
}

// Server timestamps (job times, creation dates) are UTC instants: shown in local time.
export function formatInstant(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? iso : when.toLocaleString();
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export const plural = (n, word, many = word + "s") => `${n.toLocaleString()} ${n === 1 ? word : many}`;

// Single-key shortcuts that stay out of the way while someone types.
export function onShortcut(handler) {
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) {
      return;
    }
    if (document.querySelector("dialog[open]")) return;
    handler(event);
  });
}

// A drop zone: drag and drop, a "choose" button that opens the hidden file input, and optionally
// paste anywhere on the page (images only). `onFiles` gets an array of File.
export function dropzone(zone, { input, chooser, onFiles, paste = false, filter = () => true }) {
  const take = (list) => {
    const files = Array.from(list || []).filter(filter);
    if (files.length) onFiles(files);
  };
  zone.addEventListener("dragover", (event) => {
    if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    take(event.dataTransfer && event.dataTransfer.files);
  });
  if (chooser && input) chooser.addEventListener("click", () => input.click());
  if (input) {
    input.addEventListener("change", () => {
      take(input.files);
      input.value = "";
    });
  }
  if (paste) {
    document.addEventListener("paste", (event) => {
      const files = event.clipboardData ? Array.from(event.clipboardData.files) : [];
      if (files.some(filter)) {
        event.preventDefault();
        take(files);
      }
    });
  }
}

export const isImage = (file) => file.type.startsWith("image/") || /\.(heic|heif|dng|arw|cr2|cr3|nef|raf|orf|rw2)$/i.test(file.name);

// Every page starts here: the key cookie follows storage, and a page that needs the API says so
// (returns false) when the server wants a key this browser does not have.
export function startPage({ needsApi = true } = {}) {
  syncKeyCookie();
  document.addEventListener("photoindex:unauthorized", () => {
    notice("The server refused the API key. ", h("a", { href: "/settings" }, "Check it in Settings"), ".");
  });
  if (needsApi && keyMissing()) {
    notice("This server needs an API key. ", h("a", { href: "/settings" }, "Enter it in Settings"), ".");
    return false;
  }
  return true;
}
