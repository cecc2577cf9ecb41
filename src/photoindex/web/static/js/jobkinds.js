// How the Jobs page describes each kind of job: what it works on, its progress while it runs, and what
// its report says once it has finished. An ingest counts files; an enrichment run is one task over a
// collection; a duplicate search writes its phase (hashing, comparing…) into its report as it goes.
import { api } from "./api.js";
import { runningText } from "./progress.js";
import { formatDuration, h, plural } from "./ui.js";

export const FINISHED = new Set(["completed", "failed", "cancelled", "interrupted"]);

export function elapsed(job) {
  if (!job.started_at) return null;
  const end = job.finished_at ? new Date(job.finished_at) : new Date();
  return (end - new Date(job.started_at)) / 1000;
}

const took = (job) => {
  const seconds = elapsed(job);
  return seconds !== null ? ` in ${formatDuration(seconds)}` : "";
};

// A finished job's bar: full when it completed, where it stopped otherwise.
const finishedBar = (job, done = 0, total = 1) => ({ value: job.status === "completed" ? Math.max(1, total) : done,
  max: Math.max(1, total) });

// "Failed in 3 s" for a job that did not complete (its counts say little then).
const stopped = (job) => `${job.status[0].toUpperCase()}${job.status.slice(1)}${took(job)}`;

// Dead tasks with the reason of their last attempt (kinds whose report does not list them).
async function deadTasks(job) {
  if (!(job.tasks && job.tasks.dead > 0)) return [];
  const tasks = await api.get(`/jobs/${job.id}/tasks`, { status: "dead", limit: 50 });
  return tasks.map((t) => ({ what: `task ${t.id} (${t.kind})`, code: (t.last_error && t.last_error.code) || "task_failed",
    message: (t.last_error && t.last_error.message) || "failed on every attempt" }));
}

// -- ingest ---------------------------------------------------------------------------------------
// Files a job has dealt with: live counts while it runs (the event stream's `files`), its report's
// counts once it has finished (job listings carry those, not live counts).
function filesOf(job) {
  if (job.files && (job.files.total || !FINISHED.has(job.status))) return job.files;
  const c = job.counts || {};
  const done = (c.processed || 0) + (c.exact_duplicates || 0) + (c.failed || 0);
  return { done, total: Math.max(done, (c.files_seen || 0) - (c.skipped_unchanged || 0)) };
}

const ingest = {
  scope: (job) => (job.params && job.params.roots ? job.params.roots.join(", ") : ""),
  progress(job, meter) {
    const files = filesOf(job);
    if (FINISHED.has(job.status)) {
      const seen = job.counts && job.counts.files_seen !== undefined ? job.counts.files_seen : files.done;
      return { ...finishedBar(job, files.done, files.total), text: `${plural(seen, "file")}${took(job)}` };
    }
    const text = runningText(files, meter);
    return files.total > 0 ? { value: files.done, max: files.total, text } : { text };  // no value: still counting
  },
  meter: (job) => (job.files ? job.files.done : null),
  // What it did, and every file that failed with its reason (dead tasks included: their files are
  // listed as task_failed with the last error).
  async summary(job) {
    const status = await api.get(`/ingest/status/${job.id}`, { files_limit: 0 });
    if (!status.result) return { text: status.notice || "" };
    const t = status.result.totals;
    const text = [
      `${t.processed} new`, t.exact_duplicates ? `${t.exact_duplicates} duplicates` : "",
      t.skipped_unchanged ? `${t.skipped_unchanged} unchanged` : "", t.moved ? `${t.moved} moved` : "",
      t.missing ? `${t.missing} missing` : "", `${t.failed} failed`,
      t.embeddings_pending ? `${t.embeddings_pending} waiting for a model` : "",
    ].filter(Boolean).join(" · ");
    return { text, failures: status.result.failed_files.map((f) => ({ what: f.path, code: f.code, message: f.message })) };
  },
};

// -- enrichment -------------------------------------------------------------------------------------
const enrich = {
  scope: (job) => {
    const p = job.params || {};
    return [p.collection ? `Collection ${p.collection}` : "", p.only ? `only ${p.only.join(", ")}` : "all its enrichers"]
      .filter(Boolean).join(" · ");
  },
  progress(job) {
    if (!FINISHED.has(job.status)) {
      return { text: job.status === "queued" ? "Waiting for a worker…" : "Running the enrichers…" };
    }
    const assets = (job.report && job.report.assets) || 0;
    const text = job.status === "completed" ? `${plural(assets, "photo")} enriched${took(job)}` : stopped(job);
    return { ...finishedBar(job), text };
  },
  async summary(job) {
    const report = job.report || {};
    const parts = Object.entries(report.enrichers || {}).map(([name, s]) => {
      const extra = [s.cached ? `${s.cached} from the cache` : "", s.failed ? `${s.failed} failed` : ""].filter(Boolean);
      return `${name} ${s.computed}${extra.length ? ` (${extra.join(", ")})` : ""}`;
    });
    if (report.ocr_gate_skipped) parts.push(`${plural(report.ocr_gate_skipped, "photo")} without text skipped by OCR`);
    const text = parts.length ? parts.join(" · ") : FINISHED.has(job.status) && job.status === "completed"
      ? "Nothing was missing." : "";
    return { text, notices: report.notices || [], failures: await deadTasks(job) };
  },
};

// -- duplicate search --------------------------------------------------------------------------------
const TIER_ORDER = ["exact", "pixels", "perceptual", "near", "burst"];

export function groupCounts(counts) {
  const found = TIER_ORDER.filter((t) => counts && counts[t] > 0).map((t) => `${counts[t]} ${t}`);
  const total = TIER_ORDER.reduce((n, t) => n + ((counts && counts[t]) || 0), 0);
  return total ? `${plural(total, "group")}: ${found.join(", ")}` : "No duplicates or bursts found.";
}

const duplicates = {
  scope: (job) => {
    const p = job.params || {};
    const tiers = p.params && p.params.tiers ? p.params.tiers.join(", ") : "";
    return [p.collection ? `Collection ${p.collection}` : "", tiers ? `tiers ${tiers}` : ""].filter(Boolean).join(" · ");
  },
  progress(job) {
    const report = job.report || {};
    if (FINISHED.has(job.status)) {
      const text = job.status === "completed" ? `${plural(report.assets || 0, "photo")} compared${took(job)}` : stopped(job);
      return { ...finishedBar(job), text };
    }
    const p = report.progress;
    if (!p || !p.phase) return { text: job.status === "queued" ? "Waiting for a worker…" : "Starting…" };
    if (!p.total) return { text: `${p.phase}…` };
    return { value: p.done, max: p.total, text: `${p.phase}: ${p.done.toLocaleString()} of ${p.total.toLocaleString()}` };
  },
  async summary(job) {
    const report = job.report || {};
    const failures = (report.errors || []).map((e) => ({ what: e.path, code: e.code, message: e.message }));
    if (report.error) failures.push({ what: "search", code: report.error.code, message: report.error.message });
    if (job.status !== "completed") return { text: "", failures: failures.length ? failures : await deadTasks(job) };
    return { text: groupCounts(job.counts), failures, notices: report.notices || [],
      link: h("a", { href: `/duplicates?task=${job.id}` }, "Review them on the Duplicates page") };
  },
};

// -- anything else ----------------------------------------------------------------------------------
const other = {
  scope: (job) => (job.params && job.params.collection ? `Collection ${job.params.collection}` : ""),
  progress: (job) => (FINISHED.has(job.status) ? { ...finishedBar(job), text: stopped(job) } : { text: "Running…" }),
  async summary(job) {
    const text = Object.entries(job.counts || {}).filter(([, v]) => typeof v === "number")
      .map(([k, v]) => `${k} ${v}`).join(" · ");
    return { text, failures: await deadTasks(job) };
  },
};

const KINDS = { ingest, enrich, duplicates };
export const kindOf = (job) => KINDS[job.kind] || other;
