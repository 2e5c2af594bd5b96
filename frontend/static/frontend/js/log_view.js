// The log pane of the Run detail page: a window of real DOM lines (so Ctrl/Cmd+F and
// copy work) over a log that may hold hundreds of thousands of lines.
//
// - Lines arrive in seq order through ingest() (websocket frames, gap refills); they are
//   queued and added once per animation frame as one DocumentFragment.
// - At most DOM_CAP lines are in the DOM. While following the tail, the oldest ones are
//   dropped (one Range delete) and come back through "load earlier lines".
// - Scrolling up pauses auto-scroll; returning to the bottom resumes it. While paused,
//   new lines are appended below until the cap; beyond it the view "detaches" and counts
//   them, and "jump to latest" reloads the tail over REST.
// - A step filter and the WARNING/ERROR chip reload the tail over REST with step=/level=.

import { fetchJSON, formatTime } from "./common.js";

const PAGE = 2000; // lines per REST page: the tail on a filter change, and each "load earlier"
const DOM_CAP = 10000; // lines in the DOM at most
const BOTTOM_SLACK_PX = 8; // "at the bottom" despite sub-pixel scroll positions
const UP_KEYS = new Set(["ArrowUp", "PageUp", "Home"]);
const LEVEL_RANK = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40 };

export class LogView {
  /**
   * @param {object} o
   * @param {HTMLElement} o.scroller  the scrolling box
   * @param {HTMLElement} o.list      where the line elements live
   * @param {HTMLTemplateElement} o.template  one line's markup (_run_log_line.html)
   * @param {HTMLElement} o.earlier   the "load earlier lines" button
   * @param {HTMLElement} o.paused    the "paused — jump to latest" button
   * @param {HTMLElement} o.empty     the "no lines" note
   * @param {HTMLElement} o.error     where a failed REST request is reported
   * @param {string} o.logsUrl        /api/v1/runs/<id>/logs/
   * @param {number} o.lastSeq        the seq of the last line rendered by the server
   */
  constructor({ scroller, list, template, earlier, paused, empty, error, logsUrl, lastSeq }) {
    Object.assign(this, { scroller, list, earlier, paused, empty, error, logsUrl });
    this.lineTemplate = template.content.firstElementChild;
    this.seenSeq = lastSeq; // the last seq received, whatever the filter
    this.filter = { step: "", level: "" };
    this.following = true;
    this.detached = false; // the DOM does not reach the newest matching line
    this.missed = 0; // matching lines not shown while detached
    this.queue = []; // matching lines waiting for the next frame
    this.frame = 0;
    this.grown = 0; // px of lines appended while paused since the last scroll event
    this.loading = null; // {generation, held: []} while a REST reload is in flight
    this.generation = 0;
    this.localize(list);
    scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    // Pause on the intent, before the first scroll event: a frame of new lines landing in
    // between would otherwise snap the view back to the bottom under the reader.
    scroller.addEventListener("wheel", (event) => { if (event.deltaY < 0) this.pauseByUser(); }, { passive: true });
    scroller.addEventListener("keydown", (event) => { if (UP_KEYS.has(event.key)) this.pauseByUser(); });
    scroller.addEventListener("mousedown", (event) => {
      if (event.target === scroller && event.offsetX >= scroller.clientWidth) this.pauseByUser(); // the scrollbar
    });
    earlier.addEventListener("click", () => this.loadEarlier());
    paused.addEventListener("click", () => this.jumpToLatest());
    this.scrollToBottom();
  }

  /** Server-rendered clocks are UTC; show them in the browser's timezone, UTC on hover. */
  localize(root) {
    for (const node of root.querySelectorAll("time.ll-ts")) {
      node.textContent = formatTime(node.getAttribute("datetime"));
    }
  }

  matches(line) {
    const { step, level } = this.filter;
    return (!step || line.step === step) && (!level || LEVEL_RANK[line.level] >= LEVEL_RANK[level]);
  }

  /** New lines of the run, in seq order, unfiltered. Lines already seen are ignored. */
  ingest(lines) {
    const fresh = lines.filter((line) => line.seq > this.seenSeq);
    if (!fresh.length) return;
    this.seenSeq = fresh[fresh.length - 1].seq;
    if (this.loading) {
      this.loading.held.push(...fresh);
      return;
    }
    this.show(fresh.filter((line) => this.matches(line)));
  }

  show(lines) {
    if (!lines.length) return;
    if (this.detached) {
      this.missed += lines.length;
      this.updatePaused();
      return;
    }
    this.queue.push(...lines);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    let batch = this.queue;
    this.queue = [];
    if (this.following && batch.length >= DOM_CAP) {
      // A burst bigger than the window: render only its tail; the rest is "earlier lines".
      batch = batch.slice(-DOM_CAP);
      this.list.replaceChildren();
      this.earlier.hidden = false;
    } else if (!this.following) {
      // Never move what a reader is looking at: stop at the cap and count the rest.
      const room = Math.max(0, DOM_CAP - this.list.childElementCount);
      if (batch.length > room) {
        this.detached = true;
        this.missed += batch.length - room;
        batch = batch.slice(0, room);
        this.updatePaused();
      }
    }
    if (batch.length) {
      const height = this.following ? 0 : this.scroller.scrollHeight;
      this.list.append(this.render(batch));
      this.empty.hidden = true;
      // A scroll event reports a position reached before this append: see onScroll.
      if (!this.following) this.grown += this.scroller.scrollHeight - height;
    }
    if (this.following) {
      this.trimTop(this.list.childElementCount - DOM_CAP);
      this.scrollToBottom();
    }
  }

  render(lines) {
    const fragment = document.createDocumentFragment();
    for (const line of lines) {
      const node = this.lineTemplate.cloneNode(true);
      node.className = `ll ll-${line.level.toLowerCase()}`;
      node.dataset.seq = line.seq;
      node.dataset.step = line.step;
      const [time, level, message] = node.children;
      time.setAttribute("datetime", line.ts);
      time.textContent = formatTime(line.ts);
      level.textContent = line.level;
      message.textContent = line.message;
      fragment.append(node);
    }
    return fragment;
  }

  /** Remove the first (or last) `count` lines in one DOM operation. */
  removeLines(count, fromEnd) {
    const total = this.list.childElementCount;
    if (count <= 0 || !total) return;
    const range = document.createRange();
    if (fromEnd) {
      range.setStartBefore(this.list.children[Math.max(0, total - count)]);
      range.setEndAfter(this.list.lastElementChild);
    } else {
      range.setStartBefore(this.list.firstElementChild);
      range.setEndAfter(this.list.children[Math.min(total, count) - 1]);
    }
    range.deleteContents();
  }

  trimTop(count) {
    if (count <= 0) return;
    this.removeLines(count, false);
    this.earlier.hidden = false;
  }

  // --- scrolling ----------------------------------------------------------------------

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= BOTTOM_SLACK_PX + this.grown;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  onScroll() {
    // Scroll events come a frame after the scroll: lines appended in between moved the
    // bottom away from a reader who had reached it, so what grew since counts as bottom.
    const atBottom = this.atBottom();
    this.grown = 0;
    if (atBottom) {
      if (this.detached) this.jumpToLatest();
      else if (!this.following) this.setFollowing(true);
    } else if (this.following) {
      this.setFollowing(false);
    }
  }

  pauseByUser() {
    const scrollable = this.scroller.scrollHeight > this.scroller.clientHeight;
    if (this.following && scrollable) this.setFollowing(false);
  }

  setFollowing(on) {
    this.following = on;
    if (on) this.missed = 0;
    this.updatePaused();
  }

  updatePaused() {
    this.paused.hidden = this.following;
    this.paused.textContent = this.missed
      ? `paused — ${this.missed.toLocaleString()} new lines · jump to latest ↓`
      : "paused — jump to latest ↓";
  }

  jumpToLatest() {
    if (this.detached) {
      this.reload();
      return;
    }
    this.setFollowing(true);
    this.scrollToBottom();
  }

  // --- REST ---------------------------------------------------------------------------

  /** Show only `step`'s lines and/or lines at `level` and above ("" for all). */
  setFilter(filter) {
    this.filter = { ...this.filter, ...filter };
    this.reload();
  }

  query(params) {
    const search = new URLSearchParams({ limit: PAGE, ...params });
    if (this.filter.step) search.set("step", this.filter.step);
    if (this.filter.level) search.set("level", this.filter.level);
    return fetchJSON(`${this.logsUrl}?${search}`);
  }

  /** Replace the lines with the tail of the (filtered) log and follow it again. */
  async reload() {
    const generation = ++this.generation;
    const upto = this.seenSeq;
    const held = [];
    this.loading = { held };
    this.queue = [];
    const page = await this.fetchPage({ before: upto + 1 });
    if (generation !== this.generation) return; // a newer filter won
    this.loading = null;
    if (page) {
      this.list.replaceChildren(this.render(page.lines));
      this.earlier.hidden = !page.more;
      this.detached = false;
    }
    this.updateEmpty();
    this.setFollowing(true);
    this.scrollToBottom();
    this.show(held.filter((line) => line.seq > upto && this.matches(line)));
  }

  /** A page of lines, or null (and a message on the page) if the request failed. */
  async fetchPage(params) {
    try {
      const page = await this.query(params);
      this.error.hidden = true;
      return page;
    } catch (err) {
      this.error.textContent = `Could not load log lines: ${err.message}`;
      this.error.hidden = false;
      return null;
    }
  }

  updateEmpty() {
    const filtered = Boolean(this.filter.step || this.filter.level);
    this.empty.hidden = this.list.childElementCount > 0;
    this.empty.textContent = filtered ? "No lines match this filter." : "No log lines.";
  }

  /** Prepend the page of lines before the first one shown, keeping the view still. */
  async loadEarlier() {
    const first = this.list.firstElementChild;
    const before = first ? Number(first.dataset.seq) : this.seenSeq + 1;
    const generation = this.generation;
    this.earlier.disabled = true;
    const page = await this.fetchPage({ before });
    this.earlier.disabled = false;
    if (!page || generation !== this.generation) return;
    const height = this.scroller.scrollHeight;
    this.list.prepend(this.render(page.lines));
    this.scroller.scrollTop += this.scroller.scrollHeight - height;
    this.earlier.hidden = !page.more;
    const excess = this.list.childElementCount - DOM_CAP;
    if (excess > 0) {
      // The reader went back in time: drop the newest lines; "jump to latest" reloads them.
      this.removeLines(excess, true);
      this.detached = true;
      this.setFollowing(false);
    }
    this.updateEmpty();
  }
}
