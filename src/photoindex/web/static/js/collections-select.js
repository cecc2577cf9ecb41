// The collection a page shows: `?collection=NAME` in its URL, else the server's selected collection.
import { api } from "./api.js";
import { h, plural } from "./ui.js";

export function collectionFromUrl() {
  return new URLSearchParams(location.search).get("collection") || "";
}

const optionLabel = (c) => `${c.name}${c.active ? " (selected)" : ""} · ${plural(c.asset_count, "photo")}`;

// Fill a <select>: the selected collection first with value "" (the server's default), then the
// others by name; returns the collections.
export async function fillCollectionSelect(select, current) {
  const collections = await api.get("/collections");
  const active = collections.find((c) => c.active);
  const first = h("option", { value: "" }, active ? optionLabel(active) : "Selected collection");
  const others = collections.filter((c) => !c.active).map((c) => h("option", { value: c.name }, optionLabel(c)));
  select.replaceChildren(first, ...others);
  const wanted = current && !(active && active.name === current) ? current : "";
  select.value = wanted;
  if (select.value !== wanted) select.value = "";  // a name that is not (or no longer) there
  return collections;
}

export function withCollection(url, name) {
  if (!name) return url;
  const u = new URL(url, location.origin);
  u.searchParams.set("collection", name);
  return u.pathname + u.search;
}
