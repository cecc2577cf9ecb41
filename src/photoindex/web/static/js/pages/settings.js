// Settings: the API key (kept in this browser), the server's state, the models in use, the candidate
// labels (changed at run time, no restart), and a button that starts enrichment as a job.
import { api, getKey, keysRequired, setKey, validKey } from "../api.js";
import { fillCollectionSelect } from "../collections-select.js";
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

// -- candidate labels ---------------------------------------------------------------------------
const labelsInput = $("#labels");
const labelsStatus = $("#labels-status");
const MAX_LABELS = 1000;

const parseLabels = (text) => [...new Set(text.split("\n").map((l) => l.trim()).filter(Boolean))];

function showLabels(labels) {
  labelsInput.value = labels.join("\n");
  labelsInput.dataset.saved = labelsInput.value;
  countLabels();
}

function countLabels() {
  $("#labels-count").textContent = `(${plural(parseLabels(labelsInput.value).length, "label")})`;
}

async function loadLabels() {
  showLabels((await api.get("/settings/labels")).labels);
}

async function saveLabels(event) {
  event.preventDefault();
  const labels = parseLabels(labelsInput.value);
  const tooLong = labels.find((l) => l.length > 128);
  if (!labels.length || labels.length > MAX_LABELS || tooLong) {
    setStatus(labelsStatus, tooLong ? `“${tooLong.slice(0, 40)}…” is longer than 128 characters.`
      : `Give between 1 and ${MAX_LABELS} labels, one per line.`, "error");
    return;
  }
  try {
    const saved = await api.put("/settings/labels", { labels });
    showLabels(saved.labels);
    setStatus(labelsStatus, `Saved ${plural(saved.labels.length, "label")}. Workers use them from their next batch.`, "ok");
  } catch (error) {
    showError(error, labelsStatus);
  }
}

// -- enrichment -----------------------------------------------------------------------------------
const enrichStatus = $("#enrich-status");

async function runEnrichment(event) {
  event.preventDefault();
  const form = event.target;
  const only = [...form.querySelectorAll("input[name=only]:checked")].map((i) => i.value);
  const body = {};
  if ($("#enrich-collection").value) body.collection = $("#enrich-collection").value;
  if (only.length) body.only = only;
  setStatus(enrichStatus, "Starting…");
  try {
    const job = await api.post("/enrich", body);
    enrichStatus.replaceChildren(`Job #${job.job_id} started: enrichment${only.length ? ` (${only.join(", ")})` : ""}. `,
      h("a", { href: "/jobs" }, "Follow it on the Jobs page"), ".");
    enrichStatus.dataset.kind = "ok";
  } catch (error) {
    showError(error, enrichStatus);
  }
}

function refresh() {
  server().catch((error) => showError(error));
  if (!keysRequired || getKey()) {
    models().catch((error) => showError(error));
    loadLabels().catch((error) => showError(error, labelsStatus));
    fillCollectionSelect($("#enrich-collection"), "").catch((error) => showError(error, enrichStatus));
  }
}

labelsInput.addEventListener("input", countLabels);
$("#labels-form").addEventListener("submit", saveLabels);
$("#labels-revert").addEventListener("click", () => {
  labelsInput.value = labelsInput.dataset.saved || "";
  countLabels();
  setStatus(labelsStatus, "");
});
$("#enrich-form").addEventListener("submit", runEnrichment);

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
