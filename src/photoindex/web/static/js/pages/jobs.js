// Jobs: start an ingest (a folder on the server, or photos dropped here and uploaded), and follow
// every unfinished job live over its event stream: progress, rate, time left, failures and their
// reasons, dead tasks with a Retry button. Ingest, enrichment and duplicate-search jobs each describe
// themselves (jobkinds.js).
import { api, eventsUrl } from "../api.js";
import { fillCollectionSelect } from "../collections-select.js";
import { FINISHED, kindOf } from "../jobkinds.js";
import { RateMeter } from "../progress.js";
import { $, dropzone, formatBytes, formatInstant, h, isImage, plural, setStatus, showError, startPage } from "../ui.js";

const list = $("#jobs");
const empty = $("#jobs-empty");
const startStatus = $("#start-status");
const collectionSelect = $("#ingest-collection");
const REFRESH_MS = 5000;
const cards = new Map();  // job id -> {el, job, stream, meter, reported}

function card(job) {
  let entry = cards.get(job.id);
  if (entry) return entry;
  const el = h("li", { class: "job", dataset: { id: job.id } },
    h("div", { class: "job-head" },
      h("h3", {}, `#${job.id} ${job.kind}`),
      h("span", { class: "status-badge" }),
      h("span", { class: "muted when" })),
    h("p", { class: "muted roots" }),
    h("div", { class: "job-progress" }, h("progress", { max: 1, value: 0, "aria-label": `Progress of job ${job.id}` }),
      h("span", { class: "numbers" })),
    h("p", { class: "muted tasks" }),
    h("p", { class: "summary" }),
    h("ul", { class: "notices muted", hidden: true }),
    h("details", { class: "failures", hidden: true }, h("summary", {}), h("ul", {})),
    h("div", { class: "actions" }));
  entry = { el, job, stream: null, meter: new RateMeter(), reported: false };
  cards.set(job.id, entry);
  return entry;
}

function place(entries) {
  // newest first, the order GET /jobs gives; existing elements move rather than being rebuilt
  entries.forEach((entry, i) => {
    if (list.children[i] !== entry.el) list.insertBefore(entry.el, list.children[i] || null);
  });
  empty.hidden = entries.length > 0;
}

function taskText(tasks) {
  const parts = Object.entries(tasks || {}).filter(([, n]) => n > 0).map(([status, n]) => `${n} ${status}`);
  return parts.length ? `Tasks: ${parts.join(", ")}` : "";
}

function button(label, onclick, cls = "") {
  return h("button", { type: "button", class: cls, onclick }, label);
}

function actions(entry, job) {
  const out = [];
  const act = (verb) => async () => {
    try {
      const result = await api.post(`/jobs/${job.id}/${verb}`);
      if (verb === "retry") {
        setStatus(startStatus, `Job #${job.id}: ${plural(result.requeued.length, "task")} queued again.`);
        entry.reported = false;
        refresh();
      } else {
        update(entry, result);
      }
      if (verb === "resume" || verb === "retry") follow(entry);
    } catch (error) {
      showError(error, startStatus);
    }
  };
  if (["queued", "running"].includes(job.status)) out.push(button("Pause", act("pause"), "secondary"));
  if (["paused", "interrupted"].includes(job.status)) out.push(button("Resume", act("resume")));
  if (["queued", "running", "paused"].includes(job.status)) out.push(button("Cancel", act("cancel"), "secondary"));
  if ((job.tasks && job.tasks.dead) > 0) {
    out.push(button(`Retry ${plural(job.tasks.dead, "dead task")}`, act("retry")));
  }
  return out;
}

function update(entry, job) {
  entry.job = job;
  const kind = kindOf(job);
  const done = kind.meter ? kind.meter(job) : null;
  if (done !== null && !FINISHED.has(job.status)) entry.meter.add(done);
  const { el } = entry;
  el.dataset.status = job.status;
  const badge = el.querySelector(".status-badge");
  badge.textContent = job.status;
  badge.dataset.status = job.status;
  el.querySelector(".when").textContent = job.finished_at ? `finished ${formatInstant(job.finished_at)}`
    : job.started_at ? `started ${formatInstant(job.started_at)}` : `queued ${formatInstant(job.created_at)}`;
  el.querySelector(".roots").textContent = kind.scope(job);
  const bar = el.querySelector("progress");
  const progress = kind.progress(job, entry.meter);
  if (progress.value !== undefined) {
    bar.max = progress.max;
    bar.value = progress.value;
  } else {
    bar.removeAttribute("value");  // indeterminate: nothing to count yet
  }
  el.querySelector(".numbers").textContent = progress.text;
  el.querySelector(".tasks").textContent = taskText(job.tasks);
  // rebuilt only when they change, so a focused button keeps the focus while progress streams in
  const actionsKey = `${job.status}/${job.tasks ? job.tasks.dead || 0 : 0}`;
  if (entry.actionsKey !== actionsKey) {
    entry.actionsKey = actionsKey;
    const box = el.querySelector(".actions");
    const hadFocus = box.contains(document.activeElement);
    box.replaceChildren(...actions(entry, job));
    if (hadFocus && box.firstElementChild) box.firstElementChild.focus();
  }
  if (FINISHED.has(job.status) && !entry.reported) {
    entry.reported = true;
    report(entry).catch((error) => showError(error, el.querySelector(".summary")));
  }
}

// A finished job's report: what it did, notices, and everything that failed with its reason.
async function report(entry) {
  const job = entry.job;
  const { text, link, notices = [], failures = [] } = await kindOf(job).summary(job);
  const { el } = entry;
  el.querySelector(".summary").replaceChildren(text || "", link ? " " : "", link || "");
  const notes = el.querySelector(".notices");
  notes.hidden = notices.length === 0;
  notes.replaceChildren(...notices.map((n) => h("li", {}, n)));
  const box = el.querySelector(".failures");
  box.hidden = failures.length === 0;
  box.querySelector("summary").textContent = `${plural(failures.length, "failure")}`;
  box.querySelector("ul").replaceChildren(...failures.map((f) => h("li", {},
    h("code", {}, f.what), " ", h("span", { class: "tag" }, f.code), " ", f.message)));
  if (failures.length && job.status !== "completed") box.open = true;
}

// Live progress over Server-Sent Events. The browser sends the key cookie with the stream request
// (an EventSource cannot set headers); the server ends the stream with an `end` event.
function follow(entry) {
  if (entry.stream) return;
  const stream = new EventSource(eventsUrl(entry.job.id));
  entry.stream = stream;
  entry.meter = new RateMeter();
  const take = (event) => update(entry, JSON.parse(event.data));
  stream.addEventListener("progress", take);
  stream.addEventListener("end", (event) => {
    stream.close();
    entry.stream = null;
    take(event);
  });
  stream.addEventListener("error", () => {
    if (stream.readyState === EventSource.CLOSED) entry.stream = null;  // the periodic refresh takes over
  });
}

async function refresh() {
  try {
    const jobs = await api.get("/jobs", { limit: 20 });
    const entries = jobs.map((job) => {
      const entry = card(job);
      if (!entry.stream) update(entry, job);
      if (!FINISHED.has(job.status) && job.status !== "paused") follow(entry);
      return entry;
    });
    for (const [id, entry] of cards) {
      if (!entries.includes(entry)) {
        if (entry.stream) entry.stream.close();
        entry.el.remove();
        cards.delete(id);
      }
    }
    place(entries);
  } catch (error) {
    showError(error, startStatus);
  }
}

async function started(promise, what) {
  try {
    const accepted = await promise;
    setStatus(startStatus, `Job #${accepted.job_id} started: ${what}.`, "ok");
    await refresh();
  } catch (error) {
    showError(error, startStatus);
  }
}

function upload(files) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const bytes = files.reduce((n, f) => n + f.size, 0);
  setStatus(startStatus, `Uploading ${plural(files.length, "photo")} (${formatBytes(bytes)})…`);
  started(api.upload("/ingest/upload", form, { collection: collectionSelect.value }),
    `${plural(files.length, "photo")} uploaded`);
}

if (startPage()) {
  $("#scan-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const path = $("#scan-path").value.trim();
    const body = { path };
    if (collectionSelect.value) body.collection = collectionSelect.value;
    setStatus(startStatus, `Starting an ingest of ${path}…`);
    started(api.post("/ingest/scan", body), `ingest of ${path}`);
  });
  dropzone($("#upload-drop"), { input: $("#upload-files"), chooser: $("#choose-files"), onFiles: upload, filter: isImage });
  fillCollectionSelect(collectionSelect, "").catch((error) => showError(error, startStatus));
  refresh();
  setInterval(() => {
    if (!document.hidden) refresh();
  }, REFRESH_MS);
}
