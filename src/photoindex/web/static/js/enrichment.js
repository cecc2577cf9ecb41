// What models say about a photo (issue 5: objects with boxes, text, captions, tags, quality).
// Each section renders only when the asset detail carries its data, so on a server without
// enrichment the photo page shows none of them. Boxes are normalised (0..1, origin top-left), so they
// overlay the preview whatever its size.
import { $, h } from "./ui.js";

const pct = (v) => `${(Math.min(1, Math.max(0, Number(v) || 0)) * 100).toFixed(3)}%`;

function regionsOf(detail) {
  return Array.isArray(detail.regions) ? detail.regions.filter((r) => r && r.box) : [];
}

function drawBoxes(regions) {
  const layer = $("#boxes");
  layer.replaceChildren(...regions.map((r, i) => {
    const box = h("div", { class: "box", dataset: { index: i }, title: `${r.label} ${Number(r.score).toFixed(2)}` },
      h("span", { class: "box-label" }, r.label));
    box.style.left = pct(r.box.x0);
    box.style.top = pct(r.box.y0);
    box.style.width = pct(r.box.x1 - r.box.x0);
    box.style.height = pct(r.box.y1 - r.box.y0);
    return box;
  }));
}

function renderObjects(detail) {
  const regions = regionsOf(detail);
  if (!regions.length) return;
  drawBoxes(regions);
  const toggle = $("#show-boxes");
  const layer = $("#boxes");
  layer.hidden = !toggle.checked;
  toggle.addEventListener("change", () => {
    layer.hidden = !toggle.checked;
  });
  $("#objects").replaceChildren(...regions.map((r) => h("li", {},
    `${r.label} `, h("span", { class: "muted" }, Number(r.score).toFixed(2)), r.caption ? ` — ${r.caption}` : "")));
  $("#objects-section").hidden = false;
}

function renderOcr(detail) {
  const ocr = detail.ocr;
  const text = typeof ocr === "string" ? ocr : ocr && Array.isArray(ocr.lines) ? ocr.lines.map((l) => l.text).join("\n") : "";
  if (!text.trim()) return;
  $("#ocr").textContent = text;
  $("#ocr-section").hidden = false;
}

function renderCaptions(detail) {
  const list = Array.isArray(detail.captions) ? detail.captions : detail.caption ? [detail.caption] : [];
  const texts = list.map((c) => (typeof c === "string" ? c : c && c.text)).filter(Boolean);
  if (!texts.length) return;
  $("#captions").replaceChildren(...texts.map((t, i) => (i ? [h("br"), t] : t)).flat());
  $("#captions-section").hidden = false;
}

function renderTags(detail) {
  const tags = Array.isArray(detail.tags) ? detail.tags : [];
  const names = tags.map((t) => (typeof t === "string" ? t : t && (t.label || t.name))).filter(Boolean);
  if (!names.length) return;
  $("#tags").replaceChildren(...names.map((name) => h("li", { class: "chip static" }, name)));
  $("#tags-section").hidden = false;
}

function renderQuality(detail) {
  const q = detail.quality;
  if (!q || typeof q !== "object") return;
  const rows = Object.entries(q).filter(([, v]) => typeof v === "number");
  if (!rows.length) return;
  $("#quality").replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v.toFixed(2))]));
  $("#quality-section").hidden = false;
}

export function renderEnrichment(detail) {
  renderObjects(detail);
  renderOcr(detail);
  renderCaptions(detail);
  renderTags(detail);
  renderQuality(detail);
}

// "b" shows or hides the boxes when there are any.
export function toggleBoxes() {
  const toggle = $("#show-boxes");
  if ($("#objects-section").hidden) return false;
  toggle.checked = !toggle.checked;
  toggle.dispatchEvent(new Event("change"));
  return true;
}
