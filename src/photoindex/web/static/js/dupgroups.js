// One group of a duplicate report as HTML: its tier and evidence, why the suggested keeper is the one
// to keep, and each member side by side with its thumbnail, size and an "Archive" checkbox. Burst
// stacks render as a stack that opens to show its frames; their frames are never preselected.
//
// A member's key names what archiving it moves: `f<file id>` for a copy in an exact group (one file
// of a content stored at several paths), `a<asset id>` for a photo of the other tiers (all its files).
import { thumbUrl } from "./api.js";
import { formatBytes, formatTaken, h, plural } from "./ui.js";

const TIER_NAMES = { exact: "Exact copies", pixels: "Same pixels", perceptual: "Same picture", near: "Near-identical",
  burst: "Burst" };
const baseName = (path) => (path ? path.split("/").pop() : "");
const folderOf = (path) => (path ? path.slice(0, path.lastIndexOf("/") + 1) : "");

export function memberKey(m) {
  return m.file_id !== null && m.file_id !== undefined ? `f${m.file_id}` : `a${m.asset_id}`;
}

// What archiving a member moves: one file of an exact group, every file of a photo otherwise.
export function memberFiles(m) {
  if (m.file_id !== null && m.file_id !== undefined) return { files: 1, bytes: m.bytes };
  const files = Math.max(1, (m.paths || []).length);
  return { files, bytes: m.bytes * files };
}

function evidenceText(group) {
  const e = group.evidence || {};
  if (group.tier === "exact") {
    const hash = String(e.sha256 || "").slice(0, 12);
    return `The same file content at ${(e.paths || group.assets).length} paths (SHA-256 ${hash}…).`;
  }
  if (group.tier === "burst") {
    return `${plural(e.frames || group.assets.length, "frame")} within ${Number(e.span_s || 0).toFixed(1)} s` +
      `${e.camera ? ` from ${e.camera}` : ""}.`;
  }
  const parts = [];
  if (e.pixel_sha256) parts.push("identical pixels in different files (only the metadata differs)");
  if (e.max_distance !== undefined) {
    const turned = (e.transforms || []).filter((t) => t && t !== "none");
    const apart = e.max_distance === 0 ? "identical perceptual hashes"
      : `perceptual hashes at most ${e.max_distance} of 64 bits apart`;
    parts.push(`${apart}${turned.length ? ` (${turned.join(", ")})` : ""}`);
  }
  if (e.min_cosine !== undefined) parts.push(`image embeddings at least ${Number(e.min_cosine).toFixed(3)} alike`);
  const links = Object.entries(e.links || {});
  if (links.length > 1) parts.push(`links: ${links.map(([t, n]) => `${n} ${t}`).join(", ")}`);
  const text = parts.join("; ");
  return text ? text[0].toUpperCase() + text.slice(1) + "." : "";
}

function pairText(pair, names) {
  const facts = [pair.tier];
  if (pair.distance !== null && pair.distance !== undefined) facts.push(`${pair.distance} bits apart`);
  if (pair.transform && pair.transform !== "none") facts.push(pair.transform.replaceAll("_", " "));
  if (pair.cosine !== null && pair.cosine !== undefined) facts.push(`cosine ${pair.cosine.toFixed(3)}`);
  if (pair.seconds_apart !== null && pair.seconds_apart !== undefined) facts.push(`${pair.seconds_apart} s apart`);
  return `${names.get(pair.a) || pair.a} ↔ ${names.get(pair.b) || pair.b}: ${facts.join(", ")}`;
}

function memberMeta(m) {
  return [`${m.width} × ${m.height}`, formatBytes(m.bytes), m.quality !== null && m.quality !== undefined
    ? `quality ${m.quality.toFixed(2)}` : "", m.camera || "", m.taken_at ? formatTaken(m.taken_at) : ""]
    .filter(Boolean).join(" · ");
}

// `selected(key, proposed)` says whether a member's box starts ticked (the person's earlier choice,
// else the report's proposal); `archived(member)` whether its files were moved already.
function memberItem(group, m, { selected, archived }) {
  const key = memberKey(m);
  const name = baseName(m.path) || `Photo ${m.asset_id}`;
  const gone = archived(m);
  const box = h("input", { type: "checkbox", dataset: { key, group: group.id }, checked: !gone && selected(key, m.archivable),
    disabled: gone, "aria-label": `Archive ${name}${m.keep ? " (the suggested keeper)" : ""}` });
  const thumb = h("a", { class: "thumb", href: `/photo/${m.asset_id}`, tabindex: -1 },
    h("img", { src: thumbUrl(m.asset_id), alt: "", loading: "lazy", decoding: "async", width: m.width, height: m.height }));
  thumb.style.setProperty("--ar", Math.min(3, Math.max(0.4, m.width / m.height)).toFixed(4));
  thumb.firstElementChild.addEventListener("error", (event) => event.target.classList.add("broken"), { once: true });
  const cls = `member${m.keep ? " keeper" : ""}${gone ? " archived" : ""}`;
  return h("li", { class: cls, dataset: { key, assetId: m.asset_id } },
    thumb,
    h("div", { class: "member-head" },
      m.keep ? h("span", { class: "keep-badge" }, "Suggested keeper") : null,
      gone ? h("span", { class: "tag" }, "archived") : null,
      m.tier && !m.keep ? h("span", { class: "tag" }, m.tier) : null),
    h("label", { class: "check" }, box, " Archive"),
    h("p", { class: "name" }, h("a", { href: `/photo/${m.asset_id}`, title: m.path }, name)),
    h("p", { class: "meta muted" }, memberMeta(m)),
    h("p", { class: "folder muted", title: m.path }, folderOf(m.path)),
    m.note ? h("p", { class: "note muted" }, m.note) : null);
}

function stackCover(group) {
  const shown = group.assets.slice(0, 3);
  return h("span", { class: "stack-cover", "aria-hidden": "true" }, shown.map((m, i) => {
    const img = h("img", { src: thumbUrl(m.asset_id), alt: "", loading: "lazy", width: m.width, height: m.height });
    img.style.setProperty("--i", String(i));  // the first frame on top, the others fanned out behind it
    img.style.zIndex = String(shown.length - i);
    img.style.setProperty("--ar", Math.min(3, Math.max(0.4, m.width / m.height)).toFixed(4));
    return img;
  }));
}

export function groupItem(group, options) {
  const names = new Map(group.assets.map((m) => [m.asset_id, baseName(m.path)]));
  const keeper = group.assets.find((m) => m.keep);
  const members = h("ul", { class: "members" }, group.assets.map((m) => memberItem(group, m, options)));
  const verb = group.tier === "burst" ? "Cover" : "Keep";
  const why = keeper && group.reasons.length
    ? h("p", { class: "reasons" }, `${verb} ${baseName(keeper.path)}: ${group.reasons.join("; ")}.`) : null;
  const pairs = group.pairs.length && group.tier !== "burst"
    ? h("details", { class: "pairs" }, h("summary", {}, "Evidence"),
      h("ul", {}, group.pairs.map((p) => h("li", {}, pairText(p, names)))))
    : null;
  const head = h("div", { class: "group-head" },
    h("h3", {}, h("span", { class: "tier-badge", dataset: { tier: group.tier } }, group.tier), " ",
      `${TIER_NAMES[group.tier] || group.tier} · ${plural(group.assets.length, group.tier === "exact" ? "file" : "photo")}`),
    h("p", { class: "evidence muted" }, evidenceText(group)));
  const body = group.tier === "burst"
    ? h("details", { class: "stack" }, h("summary", {}, stackCover(group),
      h("span", {}, `Stack of ${plural(group.assets.length, "frame")}: show them`)), why, members)
    : [why, members, pairs];
  return h("li", { class: `group ${group.tier}`, dataset: { id: group.id, tier: group.tier } }, head, body);
}
