// Rate and time left of a running job, from the file counts its event stream reports over time.
// The rate is measured over a sliding window, so it follows a job that speeds up or slows down.
import { formatDuration, plural } from "./ui.js";

export class RateMeter {
  constructor(windowMs = 15000) {
    this.windowMs = windowMs;
    this.samples = [];
  }

  add(done, now = performance.now()) {
    const last = this.samples[this.samples.length - 1];
    if (last && done < last.done) this.samples = [];  // counts restarted (a retried job): start over
    this.samples.push({ t: now, done });
    while (this.samples.length > 2 && now - this.samples[0].t > this.windowMs) this.samples.shift();
  }

  // files per second, or null before two samples some time apart
  rate() {
    if (this.samples.length < 2) return null;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (last.t - first.t) / 1000;
    return seconds > 0 ? (last.done - first.done) / seconds : null;
  }

  // seconds left for `total` files, or null when the rate is unknown or zero
  eta(total) {
    const r = this.rate();
    const last = this.samples[this.samples.length - 1];
    return r && r > 0 && last ? Math.max(0, total - last.done) / r : null;
  }
}

// "3 of 10 files · 2.5 files/s · about 3 s left"
export function runningText(files, meter) {
  if (!files || !files.total) return "Scanning…";
  const parts = [`${files.done.toLocaleString()} of ${plural(files.total, "file")}`];
  const r = meter.rate();
  if (r !== null && r > 0) {
    parts.push(`${r >= 10 ? Math.round(r) : r.toFixed(1)} files/s`);
    const left = meter.eta(files.total);
    if (left !== null && files.total > files.done) parts.push(`about ${formatDuration(left)} left`);
  }
  return parts.join(" · ");
}
