// Search: text or an image (dropped, pasted or chosen), with filters shown as removable chips.
// The text query and filters live in the URL, so a search can be bookmarked and Back works.
import { api, thumbUrl } from "../api.js";
import { fillCollectionSelect } from "../collections-select.js";
import { Grid } from "../grid.js";
import { saveResults } from "../results.js";
import { $, dropzone, formatTaken, h, isImage, plural, setStatus, showError, startPage } from "../ui.js";

const PAGE = 60;
const MAX_OFFSET = 10000;
const form = $("#search-form");
const input = $("#q");
const status = $("#status");
const chips = $("#chips");
const filterForm = $("#filter-form");
const select = $("#collection");
const queryImage = $("#query-image");

const state = { q: "", from: "", to: "", camera: "", collection: "", image: null, imageUrl: "" };

function readUrl() {
  const p = new URLSearchParams(location.search);
  state.q = p.get("q") || "";
  state.from = p.get("from") || "";
  state.to = p.get("to") || "";
  state.camera = p.get("camera") || "";
  state.collection = p.get("collection") || "";
}

function writeUrl(replace = false) {
  const p = new URLSearchParams();
  for (const name of ["q", "from", "to", "camera", "collection"]) if (state[name]) p.set(name, state[name]);
  const url = `/search${p.toString() ? "?" + p : ""}`;
  if (url !== location.pathname + location.search) history[replace ? "replaceState" : "pushState"](null, "", url);
}

function filters() {
  const out = {};
  if (state.from) out.date_from = `${state.from}T00:00:00`;
  if (state.to) out.date_to = `${state.to}T23:59:59`;
  if (state.camera) out.camera = state.camera;
  return out;
}

function syncInputs() {
  input.value = state.q;
  $("#f-from").value = state.from;
  $("#f-to").value = state.to;
  $("#f-camera").value = state.camera;
}

function chip(label, onRemove) {
  return h("li", {}, h("button", { type: "button", class: "chip", "aria-label": `Remove ${label}`, onclick: onRemove },
    label, h("span", { "aria-hidden": "true" }, " ×")));
}

function renderChips() {
  const list = [];
  if (state.image) list.push(chip(`Image: ${state.image.name || "pasted image"}`, () => clearImage(true)));
  if (state.from) list.push(chip(`From ${state.from}`, () => drop("from")));
  if (state.to) list.push(chip(`Until ${state.to}`, () => drop("to")));
  if (state.camera) list.push(chip(`Camera: ${state.camera}`, () => drop("camera")));
  if (state.collection) list.push(chip(`Collection: ${state.collection}`, () => drop("collection")));
  chips.replaceChildren(...list);
}

function drop(name) {
  state[name] = "";
  if (name === "collection") select.value = "";
  syncInputs();
  renderChips();
  writeUrl();
  run();
  input.focus();
}

function hitItem(hit) {
  return { id: hit.asset_id, width: hit.width, height: hit.height, thumbnail_url: thumbUrl(hit.asset_id),
    score: hit.score, path: hit.path, taken_at: hit.taken_at, camera: hit.camera };
}

async function textPage(offset) {
  const body = { text: state.q, k: PAGE, offset, filters: filters() };
  if (state.collection) body.collection = state.collection;
  return api.post("/search", body);
}

async function imagePage(offset) {
  const form = new FormData();
  form.append("image", state.image, state.image.name || "pasted.png");
  return api.upload("/search/image", form, { k: PAGE, offset, collection: state.collection, ...filters() });
}

let lastModel = "";
const grid = new Grid($("#results"), {
  sentinel: $("#more"),
  loadPage: async (cursor) => {
    const offset = cursor || 0;
    const response = state.image ? await imagePage(offset) : await textPage(offset);
    lastModel = response.model;
    const next = response.hits.length === PAGE && offset + PAGE < MAX_OFFSET ? offset + PAGE : null;
    return { items: response.hits.map(hitItem), next };
  },
  tile: (item) => {
    const name = item.path ? item.path.split("/").pop() : `Photo ${item.id}`;
    const when = item.taken_at ? `, taken ${formatTaken(item.taken_at)}` : "";
    return { href: `/photo/${item.id}?in=results`, label: `${name}${when}, score ${item.score.toFixed(3)}`,
      badge: item.score.toFixed(3), title: `${name} · score ${item.score.toFixed(3)}` };
  },
  onPage: (page, g) => {
    const what = state.image ? "for the image" : `for “${state.q}”`;
    saveResults(g.items.map((i) => i.id), what);
    const n = g.items.length;
    setStatus(status, n ? `${plural(n, "result")}${g.done ? "" : "+"} ${what} · best first · model ${lastModel}`
      : `No photos match ${what}.`);
  },
  onError: (error) => showError(error, status),
});

function run() {
  grid.reset();
  if (!state.q && !state.image) {
    setStatus(status, "Describe a photo, or drop an image to find photos like it.");
    return;
  }
  setStatus(status, "Searching…");
  grid.start();
}

function clearImage(rerun) {
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.image = null;
  state.imageUrl = "";
  queryImage.hidden = true;
  renderChips();
  if (rerun) run();
}

function searchImage(files) {
  clearImage(false);
  const file = files[0];
  state.image = file;
  state.imageUrl = URL.createObjectURL(file);
  queryImage.querySelector("img").src = state.imageUrl;
  queryImage.querySelector("figcaption").textContent = file.name || "pasted image";
  queryImage.hidden = false;
  renderChips();
  run();
}

async function loadFacets() {
  const facets = await api.get("/library/facets", { collection: state.collection });
  $("#cameras").replaceChildren(...facets.cameras.map((c) => h("option", { value: c.camera }, `${c.count}`)));
  for (const id of ["#f-from", "#f-to"]) {
    if (facets.first_taken) $(id).min = facets.first_taken.slice(0, 10);
    if (facets.last_taken) $(id).max = facets.last_taken.slice(0, 10);
  }
}

if (startPage()) {
  readUrl();
  syncInputs();
  renderChips();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.q = input.value.trim();
    if (state.q) clearImage(false);
    writeUrl();
    run();
  });
  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    state.from = $("#f-from").value;
    state.to = $("#f-to").value;
    state.camera = $("#f-camera").value.trim();
    const collectionChanged = state.collection !== select.value;
    state.collection = select.value;
    renderChips();
    writeUrl();
    if (collectionChanged) loadFacets().catch((error) => showError(error));
    run();
  });
  window.addEventListener("popstate", () => {
    readUrl();
    syncInputs();
    renderChips();
    run();
  });
  dropzone($("#drop"), { input: $("#image-file"), chooser: $("#choose-image"), onFiles: searchImage, paste: true,
    filter: isImage });
  fillCollectionSelect(select, state.collection).catch((error) => showError(error));
  loadFacets().catch((error) => showError(error));
  run();
  if (!state.q) input.focus();
}
