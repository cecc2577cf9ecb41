// A justified grid of thumbnails with infinite scroll.
//
// Every tile knows its photo's aspect ratio before the image arrives (CSS aspect-ratio plus a flex
// basis proportional to it), so rows are laid out at once and nothing moves while thumbnails load.
// Images load lazily (loading="lazy"); pages of items are fetched when a sentinel below the grid
// comes within `ahead` pixels of the viewport, one page at a time, never the whole library.
import { h } from "./ui.js";

const clampRatio = (w, h) => Math.min(3, Math.max(0.4, (w || 1) / (h || 1)));

export class Grid {
  // loadPage(cursor) -> Promise<{items, next}>; items have id, width, height and thumbnail_url.
  // tile(item) -> {href, label, badge?}: where a tile leads, its accessible label, an optional badge.
  constructor(container, { loadPage, tile, sentinel, ahead = 1500, onPage, onError }) {
    this.container = container;
    this.loadPage = loadPage;
    this.tile = tile;
    this.sentinel = sentinel;
    this.ahead = ahead;
    this.onPage = onPage || (() => {});
    this.onError = onError || (() => {});
    this.items = [];
    this.next = null;  // the cursor of the next page; undefined: the first page; null: nothing to load
    this.loading = null;
    this.generation = 0;
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.more();
    }, { rootMargin: `0px 0px ${ahead}px 0px` });
    if (sentinel) this.observer.observe(sentinel);
    container.addEventListener("keydown", (event) => this.onKey(event));
  }

  // Forget everything shown; the grid stays idle until start().
  reset() {
    this.generation += 1;
    this.items = [];
    this.next = null;
    this.loading = null;
    this.container.replaceChildren();
    this.container.setAttribute("aria-busy", "false");
  }

  start() {
    this.reset();
    this.next = undefined;
    return this.more();
  }

  get done() {
    return this.next === null;
  }

  more() {
    if (this.loading || this.next === null) return this.loading;
    const generation = this.generation;
    this.container.setAttribute("aria-busy", "true");
    this.loading = this.loadPage(this.next)
      .then((page) => {
        if (generation !== this.generation) return;  // a reset happened meanwhile: drop this page
        this.next = page.next ?? null;
        this.append(page.items);
        this.onPage(page, this);
      })
      .catch((error) => {
        if (generation !== this.generation) return;
        this.next = null;
        this.onError(error);
      })
      .finally(() => {
        if (generation !== this.generation) return;
        this.loading = null;
        this.container.setAttribute("aria-busy", "false");
        requestAnimationFrame(() => this.fillViewport());
      });
    return this.loading;
  }

  // The observer only fires on changes: on a tall screen the sentinel may still be in range after a page.
  fillViewport() {
    if (!this.sentinel || this.next === null || this.loading) return;
    if (this.sentinel.getBoundingClientRect().top < window.innerHeight + this.ahead) this.more();
  }

  append(items) {
    const fragment = document.createDocumentFragment();
    for (const item of items) {
      this.items.push(item);
      fragment.append(this.render(item, this.items.length - 1));
    }
    this.container.append(fragment);
  }

  render(item, index) {
    const { href, label, badge, title } = this.tile(item, index);
    const a = h("a", { class: "tile", href, dataset: { id: item.id, index }, title },
      h("img", { src: item.thumbnail_url, alt: label, loading: "lazy", decoding: "async",
        width: item.width, height: item.height }),
      badge ? h("span", { class: "badge" }, badge) : null);
    a.style.setProperty("--ar", clampRatio(item.width, item.height).toFixed(4));
    // a photo without a thumbnail yet keeps its empty box rather than a broken-image icon
    a.firstElementChild.addEventListener("error", (event) => event.target.classList.add("broken"), { once: true });
    return a;
  }

  // Arrow keys move between tiles: left/right in reading order, up/down to the nearest tile of the
  // row above or below; Home/End to the first and last loaded tile.
  onKey(event) {
    const current = event.target.closest && event.target.closest(".tile");
    if (!current || event.altKey || event.ctrlKey || event.metaKey) return;
    const tiles = Array.from(this.container.querySelectorAll(".tile"));
    const i = tiles.indexOf(current);
    let target = null;
    if (event.key === "ArrowRight") target = tiles[i + 1];
    else if (event.key === "ArrowLeft") target = tiles[i - 1];
    else if (event.key === "Home") target = tiles[0];
    else if (event.key === "End") target = tiles[tiles.length - 1];
    else if (event.key === "ArrowDown" || event.key === "ArrowUp") target = this.vertical(tiles, i, event.key === "ArrowDown");
    else return;
    event.preventDefault();
    if (target) {
      target.focus();
      target.scrollIntoView({ block: "nearest" });
    }
  }

  vertical(tiles, i, down) {
    const here = tiles[i].getBoundingClientRect();
    const centre = here.left + here.width / 2;
    let best = null;
    let bestRow = null;
    let bestDx = Infinity;
    const step = down ? 1 : -1;
    for (let j = i + step; j >= 0 && j < tiles.length; j += step) {
      const r = tiles[j].getBoundingClientRect();
      const sameRow = Math.abs(r.top - here.top) < 2;
      if (sameRow) continue;
      if (bestRow === null) bestRow = r.top;
      else if (Math.abs(r.top - bestRow) >= 2) break;  // past the adjacent row
      const dx = Math.abs(r.left + r.width / 2 - centre);
      if (dx < bestDx) {
        bestDx = dx;
        best = tiles[j];
      }
    }
    return best;
  }
}

// How many items fill about two screens: pages small enough to come fast, big enough to scroll.
export function pageSizeForViewport(rowHeight = 180) {
  const perScreen = (window.innerWidth * window.innerHeight) / (rowHeight * rowHeight * 1.3);
  return Math.max(30, Math.min(200, Math.ceil(perScreen * 2)));
}
