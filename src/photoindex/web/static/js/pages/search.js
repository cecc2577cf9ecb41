// Search: text or an image (dropped, pasted or chosen), with filters shown as removable chips.
// The text query and filters live in the URL, so a search can be bookmarked and Back works.
//
// Scores: a search by the picture alone ranks by cosine similarity; the default text search fuses
// that ranking with words found in the photos (captions, OCR text, tags) by reciprocal rank fusion,
// whose values (about 0.01 to 0.05) are a relevance order, not a percentage. Each hit says what found it.
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

const SCALARS = ["q", "from", "to", "camera", "text", "quality", "mode", "collection"];
const MODES = { image: "Picture only", words: "Words only" };
const MAX_TAGS = 20;
const state = { q: "", from: "", to: "", camera: "", tags: [], text: "", quality: "", mode: "", collection: "",
  image: null, imageUrl: "" };

const cleanQuality = (v) => (v !== "" && v !== null && Number(v) >= 0 && Number(v) <= 1 ? String(Number(v)) : "");
const cleanTags = (list) => [...new Set(list.map((t) => t.trim()).filter(Boolean))].slice(0, MAX_TAGS);

function readUrl() {
  const p = new URLSearchParams(location.search);
  for (const name of SCALARS) state[name] = p.get(name) || "";
  state.tags = cleanTags(p.getAll("tag"));
  state.text = ["yes", "no"].includes(state.text) ? state.text : "";
  state.quality = cleanQuality(state.quality);
  state.mode = Object.hasOwn(MODES, state.mode) ? state.mode : "";
}

function writeUrl(replace = false) {
  const p = new URLSearchParams();
  for (const name of SCALARS) if (state[name]) p.set(name, state[name]);
  for (const tag of state.tags) p.append("tag", tag);
  const url = `/search${p.toString() ? "?" + p : ""}`;
  if (url !== location.pathname + location.search) history[replace ? "replaceState" : "pushState"](null, "", url);
}

// Filters on what the catalog knows from enrichment (tags, text, quality): text searches only.
const wordFilters = () => state.tags.length > 0 || state.text !== "" || state.quality !== "";

function filters() {
  const out = {};
  if (state.from) out.date_from = `${state.from}T00:00:00`;
  if (state.to) out.date_to = `${state.to}T23:59:59`;
  if (state.camera) out.camera = state.camera;
  if (state.tags.length) out.tags = state.tags;
  if (state.text) out.has_text = state.text === "yes";
  if (state.quality) out.min_quality = Number(state.quality);
  return out;
}

function syncInputs() {
  input.value = state.q;
  $("#f-from").value = state.from;
  $("#f-to").value = state.to;
  $("#f-camera").value = state.camera;
  $("#f-tags").value = state.tags.join(", ");
  $("#f-text").value = state.text;
  $("#f-quality").value = state.quality;
  $("#f-mode").value = state.mode;
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
  for (const tag of state.tags) list.push(chip(`Tag: ${tag}`, () => dropTag(tag)));
  if (state.text) list.push(chip(state.text === "yes" ? "With text" : "Without text", () => drop("text")));
  if (state.quality) list.push(chip(`Quality ≥ ${state.quality}`, () => drop("quality")));
  if (state.mode) list.push(chip(MODES[state.mode], () => drop("mode")));
  if (state.collection) list.push(chip(`Collection: ${state.collection}`, () => drop("collection")));
  chips.replaceChildren(...list);
}

function changed() {
  syncInputs();
  renderChips();
  writeUrl();
  run();
  input.focus();
}

function drop(name) {
  state[name] = "";
  if (name === "collection") select.value = "";
  changed();
}

function dropTag(tag) {
  state.tags = state.tags.filter((t) => t !== tag);
  changed();
}

function hitItem(hit) {
  return { id: hit.asset_id, width: hit.width, height: hit.height, thumbnail_url: thumbUrl(hit.asset_id),
    score: hit.score, path: hit.path, taken_at: hit.taken_at, camera: hit.camera, foundBy: hit.found_by || [] };
}

// "relevance 0.033 · image, words" for a fused rank, "similarity 0.873" for a cosine.
function scoreText(item) {
  const kind = item.foundBy.length ? "relevance" : "similarity";
  const via = item.foundBy.length ? ` · ${item.foundBy.join(", ")}` : "";
  return { short: `${kind} ${item.score.toFixed(3)}${via}`,
    long: `${kind} ${item.score.toFixed(3)}${item.foundBy.length ? `, found by ${item.foundBy.join(" and ")}` : ""}` };
}

async function textPage(offset) {
  const body = { text: state.q, k: PAGE, offset, filters: filters() };
  if (state.collection) body.collection = state.collection;
  if (state.mode) body.mode = state.mode;
  return api.post("/search", body);
}

// The image search takes the date and camera filters; the others need words, which an image has not.
async function imagePage(offset) {
  const form = new FormData();
  form.append("image", state.image, state.image.name || "pasted.png");
  const { date_from, date_to, camera } = filters();
  return api.upload("/search/image", form, { k: PAGE, offset, collection: state.collection, date_from, date_to, camera });
}

let lastModel = "";
let fused = false;
const grid = new Grid($("#results"), {
  sentinel: $("#more"),
  loadPage: async (cursor) => {
    const offset = cursor || 0;
    const response = state.image ? await imagePage(offset) : await textPage(offset);
    lastModel = response.model;
    if (response.hits.some((hit) => hit.found_by && hit.found_by.length)) fused = true;
    const next = response.hits.length === PAGE && offset + PAGE < MAX_OFFSET ? offset + PAGE : null;
    return { items: response.hits.map(hitItem), next };
  },
  tile: (item) => {
    const name = item.path ? item.path.split("/").pop() : `Photo ${item.id}`;
    const when = item.taken_at ? `, taken ${formatTaken(item.taken_at)}` : "";
    const scores = scoreText(item);
    return { href: `/photo/${item.id}?in=results`, label: `${name}${when}, ${scores.long}`,
      badge: scores.short, title: `${name} · ${scores.long}` };
  },
  onPage: (page, g) => {
    const what = state.image ? "for the image" : `for “${state.q}”`;
    saveResults(g.items.map((i) => i.id), what);
    const n = g.items.length;
    const how = fused ? "picture and words combined" : state.mode === "words" ? "by words" : `model ${lastModel}`;
    const ignored = state.image && wordFilters() ? " · tag, text and quality filters apply to text searches only" : "";
    setStatus(status, n ? `${plural(n, "result")}${g.done ? "" : "+"} ${what} · best first · ${how}${ignored}`
      : `No photos match ${what}${ignored}.`);
  },
  onError: (error) => showError(error, status),
});

function run() {
  grid.reset();
  fused = false;
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

// Suggestions for the tags field: the candidate labels that detection and tagging choose from.
async function loadTagSuggestions() {
  const { labels } = await api.get("/settings/labels");
  $("#tag-suggestions").replaceChildren(...labels.slice(0, 500).map((label) => h("option", { value: label })));
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
    state.tags = cleanTags($("#f-tags").value.split(","));
    state.text = $("#f-text").value;
    state.quality = cleanQuality($("#f-quality").value);
    state.mode = $("#f-mode").value;
    const typed = input.value.trim();  // Apply also takes what was typed in the search box meanwhile
    if (typed && typed !== state.q) {
      state.q = typed;
      clearImage(false);
    }
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
  loadTagSuggestions().catch((error) => showError(error));
  run();
  if (!state.q) input.focus();
}
