// Library: the collection's photos newest first, in a justified grid that loads page by page.
import { api } from "../api.js";
import { collectionFromUrl, fillCollectionSelect, withCollection } from "../collections-select.js";
import { Grid, pageSizeForViewport } from "../grid.js";
import { $, formatTaken, plural, showError, startPage } from "../ui.js";

const grid = $("#grid");
const count = $("#count");
const empty = $("#empty");
const select = $("#collection");
const collection = collectionFromUrl();
const limit = pageSizeForViewport();

function label(item) {
  const when = item.taken_at ? `taken ${formatTaken(item.taken_at)}` : "no capture date";
  return [item.path ? item.path.split("/").pop() : `Photo ${item.id}`, when, item.camera].filter(Boolean).join(", ");
}

if (startPage()) {
  const view = new Grid(grid, {
    sentinel: $("#more"),
    loadPage: async (cursor) => {
      const page = await api.get("/library", { collection, limit, cursor });
      return { items: page.items, next: page.next_cursor, total: page.total };
    },
    tile: (item) => ({ href: `/photo/${item.id}`, label: label(item) }),
    onPage: (page, g) => {
      if (page.total !== null && page.total !== undefined) {
        count.textContent = `· ${plural(page.total, "photo")}`;
        empty.hidden = page.total > 0;
      }
      if (g.items.length === page.items.length) performance.mark("photoindex:first-page");
    },
    onError: (error) => showError(error),
  });
  view.start();
  fillCollectionSelect(select, collection).catch((error) => showError(error));
  select.addEventListener("change", () => {
    location.assign(withCollection("/", select.value));
  });
}
