// What the models said about a photo (GET /assets/{id}): detected objects and lines of text drawn as
// boxes over the preview, the caption, tags (each a link to a search with that tag), the OCR text,
// quality scores, and which model produced what. Each section shows only when the detail carries its
// data, so on a server without enrichment the photo page shows none of them.
//
// Boxes are normalised (0..1 from the top-left) and the preview's box has the photo's proportions, so
// percentages place them whatever size the preview is drawn at.
import { $, h } from "./ui.js";

const pct = (v) => `${(Math.min(1, Math.max(0, Number(v) || 0)) * 100).toFixed(3)}%`;
const score = (v) => Number(v).toFixed(2);
const LABEL_H = 0.06;  // about a label's height, as a fraction of the preview's
const LABEL_W = 0.2;  // and the width within which two labels side by side would overlap

export const tagSearchUrl = (tag) => `/search?${new URLSearchParams({ q: tag, tag })}`;

function regionsOf(detail, kind) {
  return (Array.isArray(detail.regions) ? detail.regions : []).filter((r) => r && r.box && r.kind === kind);
}

const regionName = (r) => (r.kind === "text" ? r.text || "" : r.label || "object");

// Where a box's label goes: above its top-left corner, else just inside it, else at its bottom, taking
// the first place that no label placed before it (a better-scored region) occupies nor the photo's
// edge cuts off. Boxes of one object often nest (a cat, and the same cat as a dog).
function placeLabels(regions) {
  const taken = [];
  const free = (x, y) => y >= 0 && !taken.some((t) => Math.abs(t.x - x) < LABEL_W && Math.abs(t.y - y) < LABEL_H);
  return regions.map((r) => {
    const x = Number(r.box.x0);
    const top = Number(r.box.y0);
    const spots = [["above", top - LABEL_H], ["inside", top], ["bottom", Number(r.box.y1) - LABEL_H]];
    const [where, y] = spots.find(([, top]) => free(x, top)) || spots[1];
    taken.push({ x, y });
    return where;
  });
}

function boxElement(r, i, where) {
  const name = regionName(r);
  const shown = name.length > 40 ? `${name.slice(0, 39)}…` : name;
  const box = h("div", { class: `box ${r.kind}`, dataset: { index: i, label: name }, title: `${name} ${score(r.score)}` },
    h("span", { class: "box-label" }, `${shown} ${score(r.score)}`));
  box.style.left = pct(r.box.x0);
  box.style.top = pct(r.box.y0);
  box.style.width = pct(r.box.x1 - r.box.x0);
  box.style.height = pct(r.box.y1 - r.box.y0);
  box.classList.add(`label-${where}`);
  return box;
}

// The list entry of a region lights its box up while pointed at or focused.
function regionItem(r, box) {
  const light = (on) => () => box.classList.toggle("lit", on);
  const text = r.kind === "text" ? h("q", {}, r.text || "") : regionName(r);
  return h("li", { tabindex: 0, onmouseenter: light(true), onmouseleave: light(false), onfocus: light(true),
    onblur: light(false) }, text, " ", h("span", { class: "muted" }, score(r.score)),
  r.caption ? h("span", { class: "muted" }, ` — ${r.caption}`) : "");
}

function setBoxesShown(shown) {
  $("#boxes").hidden = !shown;
  $("#toggle-boxes").setAttribute("aria-pressed", String(shown));
}

function renderRegions(detail) {
  const objects = regionsOf(detail, "object");
  const lines = regionsOf(detail, "text");
  const all = [...objects, ...lines];
  if (!all.length) return;
  const places = placeLabels(all);
  const boxes = all.map((r, i) => boxElement(r, i, places[i]));
  $("#boxes").replaceChildren(...[...boxes].reverse());  // the best-scored ones drawn last, on top
  if (objects.length) {
    $("#objects").replaceChildren(...objects.map((r, i) => regionItem(r, boxes[i])));
    $("#objects-section").hidden = false;
  }
  const toggle = $("#toggle-boxes");
  toggle.hidden = false;
  toggle.title = `${objects.length} objects, ${lines.length} lines of text`;
  toggle.addEventListener("click", () => toggleBoxes());
  setBoxesShown(true);
  return lines.length ? lines.map((r, i) => regionItem(r, boxes[objects.length + i])) : null;
}

function renderOcr(detail, lineItems) {
  const text = typeof detail.ocr_text === "string" ? detail.ocr_text.trim() : "";
  if (!text) return;
  $("#ocr").textContent = text;
  if (lineItems) $("#ocr").after(h("ul", { id: "text-lines", class: "regions small", "aria-label": "Lines of text found" },
    lineItems));
  $("#ocr-section").hidden = false;
}

function renderCaption(detail) {
  if (typeof detail.caption !== "string" || !detail.caption.trim()) return;
  $("#caption").textContent = detail.caption;
  $("#caption-section").hidden = false;
}

function renderTags(detail) {
  const tags = (Array.isArray(detail.tags) ? detail.tags : []).filter((t) => t && t.tag);
  if (!tags.length) return;
  $("#tags").replaceChildren(...tags.map((t) => h("li", {},
    h("a", { class: "chip", href: tagSearchUrl(t.tag), title: `${t.source || "tag"} · ${score(t.score)}`,
      "aria-label": `Search photos tagged ${t.tag}` }, t.tag))));
  $("#tags-section").hidden = false;
}

function meter(value) {
  return h("meter", { min: 0, max: 1, value: Math.min(1, Math.max(0, value)), "aria-hidden": "true" });
}

function renderQuality(detail) {
  const rows = [];
  if (typeof detail.quality === "number") {
    rows.push(["Technical", [score(detail.quality), " ", meter(detail.quality)]]);
    const parts = detail.enrichments && detail.enrichments.quality && detail.enrichments.quality.result;
    for (const name of ["sharpness", "exposure", "noise"]) {
      if (parts && typeof parts[name] === "number") rows.push([name[0].toUpperCase() + name.slice(1), score(parts[name])]);
    }
  }
  if (typeof detail.aesthetic === "number") rows.push(["Aesthetic", detail.aesthetic.toFixed(2)]);
  if (typeof detail.has_text === "boolean") rows.push(["Text in it", detail.has_text ? "yes" : "no"]);
  if (!rows.length) return;
  $("#quality").replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  $("#quality-section").hidden = false;
}

function renderEnrichers(detail) {
  const entries = Object.entries(detail.enrichments || {});
  if (!entries.length) return;
  $("#enrichments").replaceChildren(...entries.flatMap(([name, e]) => {
    const error = e.error && (e.error.message || e.error.code);
    const what = `${e.model}@${String(e.revision || "").slice(0, 8)} · ${e.status}${error ? ` — ${error}` : ""}`;
    return [h("dt", {}, name), h("dd", { class: e.status === "failed" ? "failed" : "" }, what)];
  }));
  $("#enrichments-section").hidden = false;
}

export function renderEnrichment(detail) {
  const lineItems = renderRegions(detail);
  renderCaption(detail);
  renderTags(detail);
  renderOcr(detail, lineItems);
  renderQuality(detail);
  renderEnrichers(detail);
}

// Show or hide the boxes (the button, or "b"); false when the photo has none.
export function toggleBoxes() {
  const toggle = $("#toggle-boxes");
  if (toggle.hidden) return false;
  setBoxesShown(toggle.getAttribute("aria-pressed") !== "true");
  return true;
}
