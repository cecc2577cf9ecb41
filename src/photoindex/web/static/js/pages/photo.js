// Photo detail: a large preview, its metadata and files, similar photos, and ← / → through the
// search results it was opened from (or the library order), Escape to go back.
import { API, api, thumbLarge, thumbUrl } from "../api.js";
import { renderEnrichment, toggleBoxes } from "../enrichment.js";
import { loadResults, noteEntry, returnTo } from "../results.js";
import { $, formatBytes, formatTaken, h, onShortcut, showError, startPage } from "../ui.js";

const id = Number(document.body.dataset.assetId);
const fromResults = new URLSearchParams(location.search).get("in") === "results";
const links = { prev: $("#prev"), next: $("#next"), back: $("#back") };

const fileName = (detail) => {
  const live = detail.files.find((f) => !f.missing) || detail.files[0];
  return live ? live.path.split("/").pop() : `Photo ${detail.id}`;
};

function fraction(seconds) {
  if (!seconds) return "";
  return seconds >= 1 ? `${seconds} s` : `1/${Math.round(1 / seconds)} s`;
}

function facts(detail) {
  const exif = detail.exif || {};
  const rows = [
    ["Taken", detail.taken_at ? formatTaken(detail.taken_at) : "unknown"],
    ["Camera", detail.camera],
    ["Lens", detail.lens],
    ["Exposure", [fraction(exif.exposure_time), exif.f_number ? `f/${exif.f_number}` : "",
      exif.iso ? `ISO ${exif.iso}` : "", exif.focal_length ? `${exif.focal_length} mm` : ""].filter(Boolean).join(" · ")],
    ["Size", `${detail.width} × ${detail.height} px · ${formatBytes(detail.bytes)}`],
    ["Type", detail.mime],
    ["Collection", detail.collection],
    ["Vectors", (detail.vectors || []).map((v) => `${v.model}@${String(v.revision).slice(0, 8)}`).join(", ") || "none yet"],
    ["SHA-256", h("code", { title: detail.sha256 }, detail.sha256.slice(0, 16) + "…")],
  ];
  $("#facts").replaceChildren(...rows.filter(([, v]) => v).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function flatExif(exif) {
  const out = [];
  for (const [key, value] of Object.entries(exif || {})) {
    if (key === "raw" && value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) out.push([k, v]);
    } else {
      out.push([key, value]);
    }
  }
  return out.map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)]);
}

function render(detail) {
  const name = fileName(detail);
  document.title = `${name} · photoindex`;
  $("#title").textContent = name;
  const figure = $("#figure");
  figure.style.setProperty("--ar", (detail.width / detail.height).toFixed(4));
  const img = $("#preview");
  img.alt = `${name}${detail.taken_at ? `, taken ${formatTaken(detail.taken_at)}` : ""}`;
  img.src = thumbUrl(id, thumbLarge);
  facts(detail);
  $("#exif").replaceChildren(...flatExif(detail.exif).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  $("#files").replaceChildren(...detail.files.map((f) => h("li", { class: f.missing ? "missing" : "" },
    h("code", {}, f.path), f.missing ? h("span", { class: "tag" }, "missing") : "", ` ${formatBytes(f.size)}`)));
  if (detail.gps_lat !== null && detail.gps_lat !== undefined && detail.gps_lon !== null && detail.gps_lon !== undefined) {
    const lat = Number(detail.gps_lat).toFixed(5);
    const lon = Number(detail.gps_lon).toFixed(5);
    $("#coords").textContent = `${lat}, ${lon}`;
    $("#map-link").href = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=15/${lat}/${lon}`;
    $("#location").hidden = false;
  }
  renderEnrichment(detail);
}

function setLink(link, target, suffix) {
  if (!target) {
    link.hidden = true;
    link.removeAttribute("href");
    return;
  }
  link.href = `/photo/${target}${suffix}`;
  link.hidden = false;
  const preload = new Image();
  preload.src = thumbUrl(target, thumbLarge);  // the next step shows at once
}

async function navigation() {
  const results = fromResults ? loadResults() : null;
  const at = results ? results.ids.indexOf(id) : -1;
  if (results && at >= 0) {
    setLink(links.prev, results.ids[at - 1], "?in=results");
    setLink(links.next, results.ids[at + 1], "?in=results");
    $("#position").textContent = `${at + 1} of ${results.ids.length} results ${results.label}`;
    links.back.href = results.url || "/search";
    links.back.textContent = "Back to results";
    return;
  }
  const around = await api.get(`/library/${id}/neighbours`);
  links.prev.querySelector("span").textContent = "Newer";
  links.next.querySelector("span").textContent = "Older";
  setLink(links.prev, around.newer, "");
  setLink(links.next, around.older, "");
}

// Stepping to the previous or next photo replaces this history entry: Back (and Escape) then return
// to the list the photos were opened from, not through every photo seen.
function step(link) {
  if (!link.hidden && link.href) location.replace(link.href);
}

async function similar(detail) {
  const strip = $("#similar");
  const empty = $("#similar-empty");
  if (!detail.vectors || detail.vectors.length === 0) {
    empty.textContent = "This photo has no vector yet, so there is nothing to compare it with.";
    empty.hidden = false;
    return;
  }
  const response = await api.get(`/assets/${id}/similar`, { k: 12 });
  if (!response.hits.length) {
    empty.textContent = "No other photos in this collection.";
    empty.hidden = false;
    return;
  }
  strip.replaceChildren(...response.hits.map((hit) => {
    const a = h("a", { class: "tile", href: `/photo/${hit.asset_id}`, title: `score ${hit.score.toFixed(3)}`,
      dataset: { id: hit.asset_id } },
      h("img", { src: thumbUrl(hit.asset_id), alt: `${hit.path ? hit.path.split("/").pop() : "Photo " + hit.asset_id}, score ${hit.score.toFixed(3)}`,
        loading: "lazy", decoding: "async", width: hit.width, height: hit.height }),
      h("span", { class: "badge" }, hit.score.toFixed(3)));
    a.style.setProperty("--ar", Math.min(3, Math.max(0.4, hit.width / hit.height)).toFixed(4));
    return a;
  }));
}

if (startPage()) {
  noteEntry();
  $("#original").href = `${API}/assets/${id}/original`;
  for (const link of [links.prev, links.next]) {
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;  // new tab: as usual
      event.preventDefault();
      step(link);
    });
  }
  links.back.addEventListener("click", (event) => {
    event.preventDefault();
    returnTo(links.back.href);
  });
  onShortcut((event) => {
    if (event.key === "ArrowLeft") step(links.prev);
    else if (event.key === "ArrowRight") step(links.next);
    else if (event.key === "Escape") returnTo(links.back.href);
    else if (event.key === "b" && toggleBoxes()) event.preventDefault();
    else return;
    event.preventDefault();
  });
  api.get(`/assets/${id}`)
    .then((detail) => {
      render(detail);
      return Promise.all([navigation(), similar(detail)]);
    })
    .catch((error) => showError(error, $("#position")));
}
