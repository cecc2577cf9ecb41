// Settings: the API key (kept in this browser), the server's state, and the models in use.
import { api, getKey, keysRequired, setKey, validKey } from "../api.js";
import { $, h, notice, plural, setStatus, showError, startPage } from "../ui.js";

const status = $("#key-status");
const input = $("#api-key");

function facts(rows) {
  return rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]);
}

async function server() {
  const health = await api.get("/healthz");
  const rows = [["Version", health.version], ["API keys", keysRequired ? "required" : "not required"]];
  if (!keysRequired || getKey()) {
    const ready = await api.get("/readyz");
    for (const [name, check] of Object.entries(ready.checks)) {
      rows.push([name.replace("_", " "), `${check.ok ? "ok" : "failing"}${check.detail ? ` — ${check.detail}` : ""}`]);
    }
  }
  $("#server").replaceChildren(...facts(rows));
}

async function models() {
  const collections = await api.get("/collections");
  if (!collections.length) {
    $("#models tbody").replaceChildren(h("tr", {}, h("td", { colspan: 3, class: "empty" },
      "No collections yet: the first ingest creates one with the server's default model.")));
    return;
  }
  $("#models tbody").replaceChildren(...collections.map((c) => h("tr", {},
    h("th", { scope: "row" }, c.name, c.active ? h("span", { class: "tag active" }, "selected") : ""),
    h("td", {}, c.model || h("span", { class: "muted" }, "the server default, set on first ingest")),
    h("td", {}, plural(c.asset_count, "photo")))));
}

function refresh() {
  server().catch((error) => showError(error));
  if (!keysRequired || getKey()) models().catch((error) => showError(error));
}

startPage({ needsApi: false });
function showSaved() {
  input.value = "";
  input.placeholder = getKey() ? "saved — type a new key to replace it" : "pix_…";
}

showSaved();
setStatus(status, getKey() ? "A key is saved in this browser." : keysRequired ? "No key saved yet." : "");

$("#key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = input.value.trim();
  if (!validKey(key)) {
    setStatus(status, "That does not look like an API key (letters, digits, '_' and '-').", "error");
    return;
  }
  try {
    await api.get("/collections", {}, { key });  // the server says whether it accepts the key
    setKey(key);
    notice();
    showSaved();
    setStatus(status, "Key saved. The server accepted it.", "ok");
    refresh();
  } catch (error) {
    setStatus(status, error.status === 401 ? `The server refused this key: ${error.message}.` : error.message, "error");
  }
});

$("#forget-key").addEventListener("click", () => {
  setKey("");
  showSaved();
  setStatus(status, "The key was removed from this browser.");
});

refresh();
