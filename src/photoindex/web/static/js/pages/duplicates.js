// Duplicates: start a search (a background job), follow its progress, review the groups it found with
// their tier, evidence and suggested keeper, archive what is ticked (a dry run first, shown for
// confirmation), archive every exact copy at once, and undo recent archive batches.
//
// The task being reviewed is in the URL (`?task=`), and remembered per collection in this browser,
// so the page shows the last search again when it is opened later.
import { api } from "../api.js";
import { collectionFromUrl, fillCollectionSelect, withCollection } from "../collections-select.js";
import { groupItem, memberFiles, memberKey } from "../dupgroups.js";
import { groupCounts } from "../jobkinds.js";
import { $, errorText, formatBytes, formatDuration, formatInstant, h, plural, setStatus, showError, startPage,
  toast } from "../ui.js";

const PAGE = 30;
const POLL_MS = 400;
const TIERS = ["exact", "pixels", "perceptual", "near", "burst"];
const REMEMBER = "photoindex.duplicates.";
const collection = collectionFromUrl();
const findStatus = $("#find-status");
const progressBox = $("#find-progress");
const groupsList = $("#groups");
const moreButton = $("#more-groups");
const archiveButton = $("#archive-selected");
const dialog = $("#confirm-archive");

// What the person sees and has chosen. `choices` outlives re-rendering (a tier filter, more pages).
const view = { task: null, report: null, tier: "", offset: 0, generation: 0, groups: new Map(), choices: new Map(),
  archived: new Set() };

// Messages for the curation errors a person can meet here, in front of the server's own words.
const READABLE = {
  archive_conflict: "Some files could not be moved: another file is now where they would go.",
  invalid_state: "That is no longer possible:",
  asset_not_found: "Some of these photos are no longer in the collection; search again.",
  batch_not_found: "That archive batch no longer exists.",
  job_not_found: "That duplicate search no longer exists.",
};

function explain(error) {
  const known = error && READABLE[error.code];
  return known ? `${known} ${errorText(error)}` : errorText(error);
}

function fail(error, where) {
  if (error && error.name === "AbortError") return;
  if (error && error.status === 401) return showError(error, where);
  setStatus(where, explain(error), "error");
}

function remember(task) {
  try {
    localStorage.setItem(REMEMBER + (collection || ""), String(task));
  } catch {
    // storage disabled: the URL still holds it
  }
}

function remembered() {
  const fromUrl = new URLSearchParams(location.search).get("task");
  if (fromUrl && /^\d+$/.test(fromUrl)) return Number(fromUrl);
  try {
    const saved = localStorage.getItem(REMEMBER + (collection || ""));
    return saved && /^\d+$/.test(saved) ? Number(saved) : null;
  } catch {
    return null;
  }
}

function setTaskInUrl(task) {
  const url = new URL(location.href);
  url.searchParams.set("task", String(task));
  history.replaceState(null, "", url.pathname + url.search);
}

// -- searching --------------------------------------------------------------------------------------
function searchBody(form) {
  const body = { tiers: [...form.querySelectorAll("input[name=tier]:checked")].map((i) => i.value) };
  if (collection) body.collection = collection;
  const number = (id) => ($(id).value === "" ? null : Number($(id).value));
  if (number("#threshold") !== null) body.threshold = number("#threshold");
  if (number("#phash") !== null) body.phash_max_distance = Math.round(number("#phash"));
  if (number("#burst") !== null) body.burst_window_s = number("#burst");
  return body;
}

async function find(event) {
  event.preventDefault();
  const body = searchBody(event.target);
  if (!body.tiers.length) {
    setStatus(findStatus, "Tick at least one kind of duplicate to look for.", "error");
    return;
  }
  setStatus(findStatus, "Starting the search…");
  try {
    const accepted = await api.post("/duplicates/find-similar", body);
    setTaskInUrl(accepted.task_id);
    remember(accepted.task_id);
    watch(accepted.task_id);
  } catch (error) {
    fail(error, findStatus);
  }
}

function showProgress(report) {
  const bar = progressBox.querySelector("progress");
  const p = report.progress || {};
  progressBox.hidden = false;
  if (p.total) {
    bar.max = p.total;
    bar.value = p.done;
  } else {
    bar.removeAttribute("value");
  }
  const what = report.status === "queued" ? "Waiting for a worker" : p.phase || "Starting";
  progressBox.querySelector(".numbers").textContent = p.total
    ? `${what}: ${p.done.toLocaleString()} of ${p.total.toLocaleString()}` : `${what}…`;
}

// Poll the report until the search has finished (it writes its phase there as it goes), then show it.
async function watch(task) {
  const generation = ++view.generation;
  view.task = task;
  $("#find").disabled = true;
  try {
    for (;;) {
      const report = await api.get(`/duplicates/report/${task}`, { limit: 0 });
      if (generation !== view.generation) return;
      if (report.finished) {
        progressBox.hidden = true;
        finished(report);
        return;
      }
      showProgress(report);
      setStatus(findStatus, `Search #${task} is running (${formatDuration(report.elapsed_s)} so far).`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } catch (error) {
    progressBox.hidden = true;
    if (error.status === 404) forget();
    fail(error, findStatus);
  } finally {
    if (generation === view.generation) $("#find").disabled = false;
  }
}

function forget() {
  try {
    localStorage.removeItem(REMEMBER + (collection || ""));
  } catch {
    // nothing kept
  }
}

function finished(report) {
  if (report.status !== "completed") {
    const why = report.error ? `: ${report.error.message}` : "";
    setStatus(findStatus, `Search #${report.task_id} ${report.status}${why}.`, "error");
    return;
  }
  const counts = Object.fromEntries(Object.entries(report.counts || {}).map(([t, c]) => [t, c.groups]));
  setStatus(findStatus, `Search #${report.task_id}: ${plural(report.assets, "photo")} compared in ` +
    `${formatDuration(report.elapsed_s)}. ${groupCounts(counts)}`, "ok");
  view.report = report;
  showReport(report);
}

// -- the report ---------------------------------------------------------------------------------------
function totalGroups(report, tier) {
  const counts = report.counts || {};
  return tier ? (counts[tier] ? counts[tier].groups : 0) : TIERS.reduce((n, t) => n + (counts[t] ? counts[t].groups : 0), 0);
}

function summaryText(report) {
  const counts = report.counts || {};
  const files = TIERS.reduce((n, t) => n + (counts[t] ? counts[t].archive_files : 0), 0);
  const bytes = TIERS.reduce((n, t) => n + (counts[t] ? counts[t].archive_bytes : 0), 0);
  const model = report.model ? ` Near duplicates by ${report.model}.` : "";
  return files ? `Proposed for archiving: ${plural(files, "file")} (${formatBytes(bytes)}), ticked below.${model}`
    : `Nothing is proposed for archiving.${model}`;
}

function tierFilter(report) {
  const button = (tier, label) => h("button", { type: "button", class: "chip", "aria-pressed": String(view.tier === tier),
    onclick: () => {
      view.tier = tier;
      tierFilter(report);
      loadGroups(true);
    } }, label);
  const present = TIERS.filter((t) => totalGroups(report, t) > 0);
  $("#tier-filter").replaceChildren(...(present.length > 1 ? [button("", `All ${totalGroups(report, "")}`),
    ...present.map((t) => button(t, `${t} ${totalGroups(report, t)}`))] : []));
}

function showReport(report) {
  $("#report").hidden = false;
  $("#report-h").textContent = `Groups of search #${report.task_id}`;
  $("#report-summary").textContent = summaryText(report);
  const notices = [...(report.notices || []), ...(report.errors || []).map((e) => `${e.path}: ${e.message}`)];
  $("#report-notices").hidden = notices.length === 0;
  $("#report-notices").replaceChildren(...notices.map((n) => h("li", {}, n)));
  view.tier = "";
  view.choices.clear();
  tierFilter(report);
  loadGroups(true);
}

const selectedFor = (key, proposed) => (view.choices.has(key) ? view.choices.get(key) : proposed);
// A copy is gone when its file moved; a photo when every file of it did (a moved copy leaves it whole).
function isArchived(m) {
  if (m.file_id !== null && m.file_id !== undefined) return view.archived.has(m.path);
  const paths = m.paths && m.paths.length ? m.paths : [m.path];
  return paths.every((p) => view.archived.has(p));
}

async function loadGroups(reset) {
  const report = view.report;
  if (reset) {
    view.offset = 0;
    view.groups.clear();
    groupsList.replaceChildren();
  }
  const total = totalGroups(report, view.tier);
  $("#groups-empty").hidden = total > 0;
  $("#groups-empty").textContent = "No duplicates or bursts found in this collection.";
  $("#actionbar").hidden = total === 0;
  moreButton.hidden = true;
  if (!total) return updateSelection();
  try {
    const query = { offset: view.offset, limit: PAGE, tier: view.tier };
    const page = await api.get(`/duplicates/report/${report.task_id}`, query);
    for (const group of page.groups) {
      view.groups.set(group.id, group);
      groupsList.append(groupItem(group, { selected: selectedFor, archived: isArchived }));
    }
    view.offset += page.groups.length;
    moreButton.hidden = view.offset >= total || page.groups.length === 0;
    moreButton.textContent = `Show more groups (${(total - view.offset).toLocaleString()} left)`;
  } catch (error) {
    fail(error, findStatus);
  }
  updateSelection();
}

// -- selection ------------------------------------------------------------------------------------------
function ticked() {
  const out = new Map();  // key -> member (a photo in several groups counts once)
  for (const box of groupsList.querySelectorAll("input[type=checkbox]:checked")) {
    const group = view.groups.get(box.dataset.group);
    const member = group && group.assets.find((m) => memberKey(m) === box.dataset.key);
    if (member) out.set(box.dataset.key, member);
  }
  return out;
}

function updateSelection() {
  const chosen = [...ticked().values()];
  const files = chosen.reduce((n, m) => n + memberFiles(m).files, 0);
  const bytes = chosen.reduce((n, m) => n + memberFiles(m).bytes, 0);
  $("#selection").textContent = files ? `${plural(files, "file")} selected (${formatBytes(bytes)})` : "Nothing selected.";
  archiveButton.disabled = files === 0;
}

function onTick(event) {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || box.type !== "checkbox" || !box.dataset.key) return;
  view.choices.set(box.dataset.key, box.checked);
  // the same photo may sit in two groups (a copy and a burst frame): keep its boxes in step
  for (const other of groupsList.querySelectorAll(`input[data-key="${CSS.escape(box.dataset.key)}"]`)) {
    other.checked = box.checked;
  }
  updateSelection();
}

// A group whose every member is ticked would leave nothing of the photo behind.
function wholeGroups(keys) {
  const out = [];
  for (const li of groupsList.querySelectorAll(".group")) {
    const boxes = [...li.querySelectorAll("input[type=checkbox]")].filter((b) => !b.disabled);
    if (boxes.length > 0 && boxes.every((b) => keys.has(b.dataset.key))) out.push(view.groups.get(li.dataset.id));
  }
  return out;
}

// -- archiving --------------------------------------------------------------------------------------------
function confirmMoves(plan, title) {
  dialog.querySelector("h2").textContent = title;
  dialog.querySelector(".summary").textContent = `${plural(plan.files, "file")} (${formatBytes(plan.bytes)}) move into ` +
    "the archive folder of their library. Nothing is deleted, and Undo puts them back.";
  const items = plan.items || [];
  const shown = items.slice(0, 40).map((i) => h("li", {}, h("code", {}, i.src), " → ", h("code", {}, i.dst)));
  if (items.length > shown.length) shown.push(h("li", { class: "muted" }, `and ${items.length - shown.length} more`));
  dialog.querySelector(".moves").replaceChildren(...shown);
  dialog.querySelector("button[value=archive]").textContent = `Archive ${plural(plan.files, "file")}`;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "archive"), { once: true });
    dialog.showModal();
  });
}

// Members' boxes follow what was moved, without losing the person's other choices.
function rerender() {
  for (const li of groupsList.querySelectorAll(".group")) {
    const group = view.groups.get(li.dataset.id);
    if (group) li.replaceWith(groupItem(group, { selected: selectedFor, archived: isArchived }));
  }
  updateSelection();
}

async function archiveSelected() {
  const chosen = ticked();
  const whole = wholeGroups(new Set(chosen.keys()));
  if (whole.length) {
    setStatus($("#selection"), `Keep at least one photo of each group: every one of ${whole[0].tier} group ` +
      `“${whole[0].keep_path.split("/").pop()}” is ticked.`, "error");
    return;
  }
  const body = { asset_ids: [], file_ids: [], reason: "duplicates", dry_run: true };
  if (collection) body.collection = collection;
  for (const [key, member] of chosen) {
    if (key.startsWith("f")) body.file_ids.push(member.file_id);
    else body.asset_ids.push(member.asset_id);
  }
  await archiveWith("/curation/archive-selection", body, "Archive the selected files?", $("#selection"));
}

async function archiveExact() {
  const body = { dry_run: true };
  if (collection) body.collection = collection;
  await archiveWith("/duplicates/archive-exact", body, "Archive every exact copy?", $("#exact-status"));
}

// A dry run first: the person sees every move before anything happens.
async function archiveWith(path, body, title, where) {
  try {
    const plan = await api.post(path, body);
    if (!plan.files) {
      setStatus(where, "Nothing to archive: those files are gone already.");
      return;
    }
    if (!(await confirmMoves(plan, title))) {
      setStatus(where, "Nothing was archived.");
      return;
    }
    const done = await api.post(path, { ...body, dry_run: false });
    batchFiles.set(done.batch_id, movedFrom(done));
    await loadBatches();
    setStatus(where, `Archived ${plural(done.files, "file")} (${formatBytes(done.bytes)}) as batch #${done.batch_id}.`, "ok");
    toast(`Batch #${done.batch_id}: ${plural(done.files, "file")} archived. Undo is below.`);
  } catch (error) {
    fail(error, where);
  }
}

// -- batches and undo ---------------------------------------------------------------------------------------
const batchStatus = $("#batches-status");

function batchRow(b) {
  const undo = b.status === "undone" ? null : h("button", { type: "button", class: "secondary",
    "aria-label": `Undo batch ${b.batch_id}`, onclick: () => undoBatch(b.batch_id) }, "Undo");
  const when = b.undone_at ? `undone ${formatInstant(b.undone_at)}` : formatInstant(b.finished_at || b.created_at);
  return h("tr", { dataset: { batch: b.batch_id } }, h("th", { scope: "row" }, `#${b.batch_id}`), h("td", {}, b.reason),
    h("td", {}, `${plural(b.files, "file")} · ${formatBytes(b.bytes)}`), h("td", {}, when),
    h("td", {}, h("span", { class: "status-badge", dataset: { status: b.status === "done" ? "completed" : b.status } },
      b.status)),
    h("td", { class: "actions" }, undo));
}

// Which files the recent batches moved (and have not put back): the report's members among them are
// shown as archived, also after a reload. Items are fetched once per batch.
const batchFiles = new Map();  // batch id -> source paths it moved
const movedFrom = (batch) => (batch.items || []).filter((i) => i.status === "moved").map((i) => i.src);

async function syncArchived(batches) {
  const live = batches.filter((b) => b.status !== "undone" && b.files > 0);
  await Promise.all(live.filter((b) => !batchFiles.has(b.batch_id)).map(async (b) => {
    batchFiles.set(b.batch_id, movedFrom(await api.get(`/curation/batches/${b.batch_id}`)));
  }));
  view.archived = new Set(live.flatMap((b) => batchFiles.get(b.batch_id) || []));
  rerender();
}

async function loadBatches() {
  const batches = await api.get("/curation/batches", { collection, limit: 10 });
  $("#batches tbody").replaceChildren(...(batches.length ? batches.map(batchRow)
    : [h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No archive batches yet."))]));
  await syncArchived(batches);
}

async function undoBatch(id) {
  setStatus(batchStatus, `Undoing batch #${id}…`);
  try {
    const undone = await api.post(`/curation/undo/${id}`);
    const back = undone.counts && undone.counts.restored !== undefined ? undone.counts.restored : undone.files;
    const where = back === 1 ? "it was" : "they were";
    setStatus(batchStatus, `Batch #${id} undone: ${plural(back, "file")} back where ${where}.`, "ok");
  } catch (error) {
    fail(error, batchStatus);
  }
  await loadBatches().catch((error) => fail(error, batchStatus));
}

if (startPage()) {
  fillCollectionSelect($("#collection"), collection).catch((error) => showError(error));
  $("#collection").addEventListener("change", (event) => location.assign(withCollection("/duplicates", event.target.value)));
  $("#find-form").addEventListener("submit", find);
  groupsList.addEventListener("change", onTick);
  moreButton.addEventListener("click", () => loadGroups(false));
  archiveButton.addEventListener("click", archiveSelected);
  $("#archive-exact").addEventListener("click", archiveExact);
  loadBatches().catch((error) => fail(error, batchStatus));
  const task = remembered();
  if (task) watch(task);
  else setStatus(findStatus, "No search yet for this collection.");
}
