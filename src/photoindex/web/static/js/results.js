// The list of photos a person is stepping through (the last search's results), kept in
// sessionStorage so that the photo page can go to the previous and next result with ← and →.
const STORE = "photoindex.results";

export function saveResults(ids, label, url = location.pathname + location.search) {
  try {
    sessionStorage.setItem(STORE, JSON.stringify({ ids, label, url }));
  } catch {
    // storage full or disabled: the photo page falls back to library order
  }
}

export function loadResults() {
  try {
    const value = JSON.parse(sessionStorage.getItem(STORE) || "null");
    return value && Array.isArray(value.ids) ? value : null;
  } catch {
    return null;
  }
}

// Where Escape on a photo page returns to: the list page the photo was opened from. Stepping between
// photos replaces the history entry, so while history has not grown since, Back returns to that list
// page with its scroll position and loaded pages intact.
const RETURN = "photoindex.return";

export function noteEntry() {
  const ref = document.referrer ? new URL(document.referrer) : null;
  const ours = ref && ref.origin === location.origin;
  if (ours && ref.pathname.startsWith("/photo/")) return;  // a step from another photo: same list
  try {
    if (ours) sessionStorage.setItem(RETURN, JSON.stringify({ url: ref.pathname + ref.search, depth: history.length }));
    else sessionStorage.removeItem(RETURN);  // opened from elsewhere: Escape goes to the list's address
  } catch {
    // without storage Escape goes to the list's address instead
  }
}

export function returnTo(fallback) {
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(RETURN) || "null");
  } catch {
    saved = null;
  }
  if (saved && saved.depth === history.length) history.back();
  else location.assign(saved ? saved.url : fallback);
}
