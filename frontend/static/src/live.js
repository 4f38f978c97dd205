// Live dashboard: the websocket client of the instance list (ws/tenant/) and of the instance
// detail page (ws/instances/<id>/), the detail page's tabs, widgets, terminal log, actions feed,
// next-execution countdown and equity chart. Bundled by esbuild into static/build/live.js.
//
// Frames (see frontend/consumers.py): {"kind": "hello", "heartbeat_s"}, {"kind": "pong"},
// engine events {"kind": "status"|"log"|"action"|"run"|"widgets", "instance_id", "data", "seq", "ts"},
// {"kind": "log_dropped", "count"}, {"kind": "events_dropped", "count"}.
// The client sends {"type": "heartbeat"} every few seconds: it keeps the instance "watched", so the
// engine renders its widgets only while someone looks.

import { inboxFrame } from "./lib/inbox.js";
import { liveSocket } from "./lib/socket.js";

const PAUSE_REASONS = {
  USER: "paused by a user",
  DAILY_LOSS_LIMIT: "daily loss limit reached",
  CIRCUIT_BREAKER: "too many consecutive failed runs",
  KILL_SWITCH: "the tenant's kill switch is on",
  APPROVAL_REVOKED: "staff revoked the live-trading approval",
  BAD_STATE: "its state could not be stored",
  VENUE_DISCREPANCY: "the venue disagrees with our ledger (see the account's discrepancies)",
};  // the same labels as stratbox.engine.control.PAUSE_LABELS (a test compares them)
const MODE_LABELS = { off: "Off", observe: "Observe", active: "Active" };
const MAX_LOG_LINES = 500;
const MAX_ACTIONS = 100;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return String(value);
    return Math.abs(value) >= 1000 || Number.isInteger(value)
      ? value.toLocaleString(undefined, { maximumFractionDigits: 2 })
      : value.toLocaleString(undefined, { maximumSignificantDigits: 6 });
  }
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function timeOf(ts) {
  const d = ts ? new Date(ts * 1000) : new Date();
  return d.toLocaleTimeString(undefined, { hour12: false });
}

// --- the socket ------------------------------------------------------------------------------

const STATE_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  "signed-out": "Disconnected — please log in again",
  refused: "Live updates unavailable",
};

function setIndicators(root, state) {
  root.querySelectorAll("[data-live-indicator]").forEach((node) => {
    node.textContent = STATE_TEXT[state] || state;
    node.dataset.state = state;
  });
  root.querySelectorAll("[data-live-dot]").forEach((node) => {
    node.dataset.state = state;
  });
}

// --- status pill (mirrors templates/frontend/partials/status.html) --------------------------

function statusPill(status) {
  const { mode, paused, pause_reason: reason, error, loaded } = status;
  let state = "starting";
  if (mode === "off") state = "off";
  else if (paused) state = "paused";
  else if (error) state = "error";
  else if (loaded) state = "running";
  const pill = el("span", { class: `status status-${state}`, "data-status": state });
  if (state === "running") pill.append(el("span", { class: "dot", "aria-hidden": "true" }), "Running");
  else if (state === "paused") {
    pill.append(el("span", { class: "icon icon-pause", "aria-hidden": "true" }), "Paused");
    if (reason) {
      pill.dataset.pauseReason = reason;
      pill.append(
        " ",
        el("span", { class: "reason" }, `— ${PAUSE_REASONS[reason] || reason} `, el("span", { class: "code", text: reason })),
      );
    }
  } else if (state === "error") {
    pill.append(el("span", { class: "icon icon-alert", "aria-hidden": "true" }), "Error");
    if (error && error.code) pill.append(" ", el("span", { class: "code", text: error.code }));
  } else if (state === "off") pill.append("Off");
  else pill.append("Starting…");
  return pill;
}

function statusFromDom(container, mode) {
  const pill = container ? container.querySelector("[data-status]") : null;
  const state = pill ? pill.dataset.status : "starting";
  return {
    mode,
    loaded: state === "running" || state === "paused" || state === "error",
    paused: state === "paused",
    pause_reason: pill ? pill.dataset.pauseReason || null : null,
    error: state === "error" ? { code: (pill.querySelector(".code") || {}).textContent } : null,
  };
}

function mergeStatus(current, data) {
  const next = { ...current };
  for (const key of ["mode", "loaded", "paused", "pause_reason"]) if (key in data) next[key] = data[key];
  if ("error" in data) next.error = data.error;
  if (data.loaded === true && !("error" in data)) next.error = null;
  if (data.mode === "off") Object.assign(next, { loaded: false, paused: false, pause_reason: null });
  return next;
}

function bumpCounters(root, data) {
  const inc = (name) => {
    root.querySelectorAll(`[data-stat="${name}"]`).forEach((node) => {
      node.textContent = String((parseInt(node.textContent, 10) || 0) + 1);
    });
  };
  if (data.trigger === "dry_run") return; // test runs are not scheduled runs
  inc("runs");
  if (data.status === "ok") inc("ok");
  else if (data.status === "error" || data.status === "timeout") inc("failed");
}

function modeBadge(mode) {
  return el("span", { class: `badge mode-${mode}`, title: `Mode: ${MODE_LABELS[mode] || mode}`, "data-mode": mode }, MODE_LABELS[mode] || mode);
}

// --- instance list ---------------------------------------------------------------------------

function initTenantList(root) {
  const statuses = new Map();
  root.querySelectorAll("tr[data-instance-id]").forEach((row) => {
    statuses.set(row.dataset.instanceId, statusFromDom(row.querySelector('[data-cell="status"]'), row.dataset.mode));
  });
  liveSocket(root.dataset.liveSocket, {
    onState: (state) => setIndicators(document, state),
    onEvent: (frame) => {
      if (frame.kind === "notification") {
        inboxFrame(frame);
        return;
      }
      const row = root.querySelector(`tr[data-instance-id="${frame.instance_id}"]`);
      if (!row) return;
      const data = frame.data || {};
      if (frame.kind === "status") {
        const status = mergeStatus(statuses.get(frame.instance_id) || { mode: row.dataset.mode }, data);
        statuses.set(frame.instance_id, status);
        if (data.mode && data.mode !== row.dataset.mode) {
          row.dataset.mode = data.mode;
          const badge = row.querySelector("td [data-mode]");
          if (badge) badge.replaceWith(modeBadge(data.mode));
        }
        row.querySelector('[data-cell="status"]').replaceChildren(statusPill(status));
      } else if (frame.kind === "run") {
        bumpCounters(row, data);
        const status = statuses.get(frame.instance_id);
        if (status && data.trigger !== "dry_run") {
          status.error = data.error || null;
          status.loaded = true;
          row.querySelector('[data-cell="status"]').replaceChildren(statusPill(status));
        }
      }
    },
  });
}

// --- instance detail: widgets -------------------------------------------------------------------

function alignSeries(series) {
  // uPlot wants one shared x array: the union of every series' x, with gaps as null.
  const xs = [...new Set(series.flatMap((s) => (s.points || []).map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const column = new Array(xs.length).fill(null);
    for (const [x, y] of s.points || []) column[index.get(x)] = y;
    return column;
  });
  return [xs, ...ys];
}

function renderWidget(widget, slot) {
  const type = widget.type;
  if (slot.dataset.type === type && slot._update) {
    slot._update(widget);
    return;
  }
  slot.replaceChildren();
  slot.dataset.type = type;
  slot._update = null;
  if (type === "metric") {
    const label = el("span", { class: "label" });
    const value = el("span", { class: "value" });
    slot.className = "widget metric";
    slot.append(label, value);
    slot._update = (w) => {
      label.textContent = w.label || "";
      value.textContent = fmt(w.value) + (w.unit ? ` ${w.unit}` : "");
    };
  } else if (type === "line_chart") {
    slot.className = "widget chart-widget";
    const title = el("h3", { class: "widget-title" });
    const area = el("div", { class: "plot", role: "img" });
    slot.append(title, area);
    let plot = null;
    let names = "";
    slot._update = (w) => {
      title.textContent = w.title || "Chart";
      area.setAttribute("aria-label", `${w.title || "Chart"}: line chart of ${(w.series || []).map((s) => s.name).join(", ")}`);
      const series = w.series || [];
      const data = alignSeries(series);
      const timeX = data[0].length > 0 && data[0][0] > 1e9;
      // A new plot when the series or the kind of x axis change (the first frame may be empty).
      const key = `${series.map((s) => s.name).join("\u0000")}\u0000${timeX}`;
      if (!plot || key !== names || !window.StratboxCharts) {
        area.replaceChildren();
        names = key;
        plot = window.StratboxCharts
          ? window.StratboxCharts.metricPlot(area, { labels: series.map((s) => s.name), data, height: 180, timeX })
          : null;
      } else {
        plot.setData(data);
      }
    };
  } else if (type === "table") {
    slot.className = "widget table-widget";
    slot._update = (w) => {
      const table = el("table", { class: "data compact" });
      if (w.title) table.append(el("caption", { text: w.title }));
      table.append(el("thead", {}, el("tr", {}, ...(w.columns || []).map((c) => el("th", { scope: "col", text: c })))));
      table.append(el("tbody", {}, ...(w.rows || []).map((r) => el("tr", {}, ...r.map((c) => el("td", { text: fmt(c) }))))));
      slot.replaceChildren(table);
    };
  } else if (type === "log") {
    slot.className = "widget log-widget";
    const pre = el("pre", { class: "terminal small" });
    slot.append(pre);
    slot._update = (w) => {
      pre.textContent = (w.lines || []).join("\n");
    };
  } else {
    slot.className = "widget text-widget";
    const p = el("p");
    slot.append(p);
    slot._update = (w) => {
      p.textContent = type === "text" ? w.text || "" : `Unsupported widget "${type}"`;
    };
  }
  slot._update(widget);
}

function renderWidgets(container, widgets) {
  const empty = container.querySelector("[data-widgets-empty]");
  if (!Array.isArray(widgets)) return;
  if (widgets.length === 0) {
    if (empty) empty.textContent = "The strategy's render() returned no widgets.";
    return;
  }
  if (empty) empty.remove();
  let slots = [...container.querySelectorAll(":scope > .widget")];
  while (slots.length > widgets.length) slots.pop().remove();
  while (slots.length < widgets.length) {
    const slot = el("div", { class: "widget", "data-widget-index": slots.length });
    container.append(slot);
    slots = [...slots, slot];
  }
  widgets.forEach((widget, i) => {
    if (widget && typeof widget === "object") renderWidget(widget, slots[i]);
  });
  container.dataset.updatedAt = String(Date.now());
}

// --- instance detail: logs, actions, countdown ---------------------------------------------------

function appendLog(terminal, level, msg, ts) {
  // The placeholder goes with the template's whitespace (the terminal keeps white-space: pre-wrap).
  if (terminal.querySelector("[data-log-empty]")) terminal.replaceChildren();
  const stick = terminal.scrollTop + terminal.clientHeight >= terminal.scrollHeight - 8;
  terminal.append(
    el("div", { class: `log-line lvl-${level}`, "data-log-level": level }, el("span", { class: "ts", text: timeOf(ts) }), ` [${level}] `, msg),
  );
  while (terminal.childElementCount > MAX_LOG_LINES) terminal.firstElementChild.remove();
  if (stick) terminal.scrollTop = terminal.scrollHeight;
}

function actionKind(a) {
  return a.kind === "shadow" || a.kind === "denied" ? a.kind : a.kind === "skipped" ? "denied" : "order";
}

// The same details as the server-rendered row (_action.html): side, qty, price, the limit that
// denied it (code + message) and the strategy's tag, which carries a signal's reason.
function actionItem(a, ts) {
  const kind = actionKind(a);
  const li = el("li", { class: `action action-${kind} fresh`, "data-action-kind": kind });
  li.append(el("span", { class: `badge kind-${kind}`, text: kind }), " ");
  if (a.side) li.append(el("strong", { "data-action": "side", text: String(a.side).toUpperCase() }), " ", el("span", { "data-action": "qty", text: fmt(a.qty) }));
  if (a.price) li.append(" @ ", el("span", { "data-action": "price", text: fmt(a.price) }));
  li.append(" ", el("span", { class: "muted small", text: [a.type, a.status].filter(Boolean).join(" · ") }));
  if (a.deny_code) {
    li.append(" ", el("span", { class: "code deny-code", title: a.message || "", "data-action": "deny_code", text: a.deny_code }));
    if (a.message) li.append(" ", el("span", { class: "small", text: a.message }));
  }
  if (a.tag) li.append(" ", el("span", { class: "small reason", "data-action": "reason", text: a.tag }));
  li.append(" ", el("span", { class: "repeat small", hidden: true, "data-repeat": "1" }));
  li.append(" ", el("time", { class: "muted small", datetime: new Date((ts || Date.now() / 1000) * 1000).toISOString(), text: timeOf(ts) }));
  li.dataset.signature = [kind, a.side, a.deny_code, a.tag].join("|");
  return li;
}

// A denial repeated every tick (the same side, code and reason) bumps a counter on the newest row
// instead of pushing every other action out of the feed.
function addAction(feed, a, ts) {
  const item = actionItem(a, ts);
  const top = feed.firstElementChild;
  if (item.dataset.actionKind === "denied" && top && top.dataset.signature === item.dataset.signature) {
    const repeat = top.querySelector("[data-repeat]");
    const count = Number(repeat.dataset.repeat) + 1;
    repeat.dataset.repeat = String(count);
    repeat.textContent = `×${count}`;
    repeat.hidden = false;
    const time = top.querySelector("time");
    if (time) time.replaceWith(item.querySelector("time"));
    return;
  }
  feed.prepend(item);
  while (feed.childElementCount > MAX_ACTIONS) feed.lastElementChild.remove();
}

/** Run `fn` at most once per `delay` ms, after the last call of a burst. */
function coalesce(fn, delay = 700) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, delay);
  };
}

// The Performance card and the graduation box's track record come from the server (one
// computation); a pushed fill refetches them, so they never drift from the ledger.
function refreshPerformance() {
  const block = document.getElementById("performance-block");
  if (!block || !window.htmx) return;
  window.htmx
    .ajax("GET", block.dataset.refreshUrl, { target: "#performance-block", swap: "outerHTML" })
    .then(() => initEquity(document));
}

// The execution history follows new runs while its first, unfiltered page is shown.
function refreshRuns() {
  const runs = document.getElementById("runs");
  if (!runs || !window.htmx) return;
  const form = runs.querySelector("form.filters");
  if (!form) return;
  const data = new FormData(form);
  if (data.get("status") || data.get("trigger")) return;
  const pageLabel = runs.querySelector(".pager [data-page-number]");
  if (pageLabel && pageLabel.dataset.pageNumber !== "1") return;
  if (runs.querySelector("details[open]")) return; // never collapse what the user is reading
  window.htmx.ajax("GET", form.getAttribute("action"), { target: "#runs", swap: "innerHTML" });
}

function initCountdown(root) {
  const freq = Number(root.dataset.frequency) || 0;
  const onQuotes = root.dataset.trigger === "quote"; // no period: it runs on its market's quotes
  let next = root.dataset.nextDue ? Date.parse(root.dataset.nextDue) : null;
  let running = root.dataset.mode !== "off";
  const nodes = root.querySelectorAll("[data-countdown]");
  const paint = () => {
    let text;
    if (onQuotes) text = running ? "on the next quote" : "not scheduled";
    else if (!running || next === null || Number.isNaN(next)) text = running ? "waiting for the first run…" : "not scheduled";
    else {
      const left = Math.round((next - Date.now()) / 1000);
      text = left > 0 ? `in ${left} s` : "due now…";
    }
    nodes.forEach((node) => {
      if (node.textContent !== text) node.textContent = text;
    });
  };
  setInterval(paint, 250);
  paint();
  return {
    ran: (finishedAt) => {
      if (freq) next = ((finishedAt || Date.now() / 1000) + freq) * 1000;
    },
    setRunning: (value) => {
      running = value;
      if (!value) next = null;
    },
  };
}

// A staff decision (or the tenant's own request) on this instance's live-trading request: the
// notice above the panels follows it without a reload; a reload shows the same from the server.
function showGovernance(request, iid) {
  const notice = document.getElementById("governance-status");
  if (!notice) return;
  const label = notice.querySelector("[data-governance-label]");
  const reason = notice.querySelector("[data-governance-reason]");
  notice.dataset.governance = request.status || "";
  notice.classList.toggle("warn", request.status === "rejected" || request.status === "revoked");
  if (label) label.textContent = request.status || "";
  if (reason) reason.textContent = request.reason ? ` — ${request.reason}` : "";
  const liveId = request.live_instance_id;
  let link = notice.querySelector("#live-instance-link");
  if (liveId && liveId !== iid && !link) {
    link = el("a", { id: "live-instance-link", href: `/instances/${liveId}/`, text: "open the live instance" });
    notice.append(" · ", link);
  }
  notice.hidden = false;
}

// While paused the banner says so: the mode's own sentence ("orders reach the broker") is not true then.
function showPausedBanner(paused) {
  const banner = document.getElementById("mode-banner");
  const text = banner && banner.querySelector("[data-banner-text]");
  if (!text) return;
  banner.dataset.paused = paused ? "true" : "false";
  banner.classList.toggle("is-paused", paused);
  text.textContent = paused ? text.dataset.pausedText : text.dataset.runningText;
}

function initInstanceDetail(root) {
  const terminal = root.querySelector("#live-log");
  const feed = root.querySelector("#actions-feed");
  const widgets = root.querySelector("[data-widgets]");
  const statusBox = root.querySelector("[data-live-status]");
  const countdown = initCountdown(root);
  let status = statusFromDom(statusBox, root.dataset.mode);
  const iid = root.dataset.instanceId;
  const performanceLater = coalesce(refreshPerformance, 500);
  const runsLater = coalesce(refreshRuns, 1000);

  liveSocket(root.dataset.liveSocket, {
    onState: (state) => setIndicators(document, state),
    onEvent: (frame) => {
      if (frame.instance_id && frame.instance_id !== iid) return;
      const data = frame.data || {};
      switch (frame.kind) {
        case "widgets":
          renderWidgets(widgets, data.widgets);
          break;
        case "log":
          appendLog(terminal, data.level || "info", data.msg || "", frame.ts);
          break;
        case "log_dropped":
          appendLog(terminal, "warn", `… ${frame.count} log line(s) dropped (too many to stream)`, Date.now() / 1000);
          break;
        case "events_dropped":
          appendLog(terminal, "warn", `… ${frame.count} event(s) dropped; reload for the full picture`, Date.now() / 1000);
          break;
        case "action": {
          const empty = feed.querySelector("[data-actions-empty]");
          if (empty) empty.remove();
          addAction(feed, data, frame.ts);
          if (data.status === "filled" || data.kind === "shadow") performanceLater();
          break;
        }
        case "run":
          if (data.trigger !== "dry_run") {
            runsLater();
            bumpCounters(root, data);
            countdown.ran(data.finished_at);
            status = { ...status, loaded: true, error: data.error || null };
            statusBox.replaceChildren(statusPill(status));
            if (data.error) appendLog(terminal, "error", `run failed: ${data.error.code} ${data.error.message || ""}`, frame.ts);
          }
          break;
        case "status":
          if (data.live_request) showGovernance(data.live_request, iid);
          status = mergeStatus(status, data);
          statusBox.replaceChildren(statusPill(status));
          showPausedBanner(Boolean(status.paused) && root.dataset.mode !== "off");
          countdown.setRunning(status.mode !== "off" && !status.paused && status.loaded !== false);
          if (data.mode && data.mode !== root.dataset.mode) {
            const notices = document.getElementById("live-notices");
            if (notices) {
              notices.replaceChildren(
                `The mode changed to ${MODE_LABELS[data.mode] || data.mode} elsewhere. `,
                el("a", { href: location.pathname, text: "Reload the page" }),
                " to update the controls.",
              );
              notices.hidden = false;
            }
          }
          break;
        default:
          break;
      }
    },
  });
}

// --- tabs (WAI-ARIA tabs; links still work without JavaScript) ----------------------------------

function initTabs(root) {
  root.querySelectorAll("[data-tabs]").forEach((box) => {
    const tabs = [...box.querySelectorAll('[role="tab"]')];
    const select = (tab, focus) => {
      tabs.forEach((t) => {
        const on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        const panel = document.getElementById(t.getAttribute("aria-controls"));
        if (panel) panel.hidden = !on;
      });
      if (focus) tab.focus();
      const url = new URL(location.href);
      url.searchParams.set("tab", tab.dataset.tab);
      history.replaceState(null, "", url);
      window.dispatchEvent(new Event("resize")); // charts in a newly shown panel size themselves
    };
    tabs.forEach((tab, i) => {
      tab.addEventListener("click", (event) => {
        event.preventDefault();
        select(tab, false);
      });
      tab.addEventListener("keydown", (event) => {
        let target = null;
        if (event.key === "ArrowRight") target = tabs[(i + 1) % tabs.length];
        else if (event.key === "ArrowLeft") target = tabs[(i - 1 + tabs.length) % tabs.length];
        else if (event.key === "Home") target = tabs[0];
        else if (event.key === "End") target = tabs[tabs.length - 1];
        else if (event.key === " " || event.key === "Enter") target = tab;
        if (target) {
          event.preventDefault();
          select(target, true);
        }
      });
    });
  });
}

// --- equity chart with trade markers (lightweight-charts, through window.StratboxCharts) -----------

function initEquity(root) {
  root.querySelectorAll("[data-equity-chart]:not([data-chart-ready])").forEach((node) => {
    if (!window.StratboxCharts) return;
    node.dataset.chartReady = "1";
    const read = (id) => {
      const script = document.getElementById(id);
      return script ? JSON.parse(script.textContent) : [];
    };
    const chart = window.StratboxCharts.lineChart(node, { points: read(node.dataset.equityChart), height: 240 });
    const markers = read(node.dataset.equityMarkers);
    if (markers.length) chart.setMarkers(markers);
    chart.chart.timeScale().fitContent();
  });
  root.querySelectorAll("[data-candle-chart]:not([data-chart-ready])").forEach((node) => {
    if (!window.StratboxCharts) return;
    node.dataset.chartReady = "1";
    const read = (id) => {
      const script = document.getElementById(id);
      return script ? JSON.parse(script.textContent) : [];
    };
    window.StratboxCharts.candleChart(node, { candles: read(node.dataset.candleChart), markers: read(node.dataset.candleMarkers) });
  });
  root.querySelectorAll("[data-compare-chart]:not([data-chart-ready])").forEach((node) => {
    if (!window.StratboxCharts) return;
    node.dataset.chartReady = "1";
    const script = document.getElementById(node.dataset.compareChart);
    window.StratboxCharts.multiLineChart(node, script ? JSON.parse(script.textContent) : []);
  });
}

// --- backtest progress (ws/backtests/<id>/) --------------------------------------------------------

function initBacktest(root) {
  const bar = root.querySelector("#bt-progress");
  const text = root.querySelector("#bt-progress-text");
  const status = document.getElementById("bt-status");
  const percent = root.querySelector("#bt-progress-percent");
  liveSocket(root.dataset.liveSocket, {
    onState: (state) => setIndicators(root, state),
    onEvent: (frame) => {
      if (frame.kind !== "backtest_progress") return;
      if (frame.total) bar.max = frame.total;
      bar.value = frame.done || 0;
      const pct = frame.total ? Math.min(100, Math.floor(((frame.done || 0) * 100) / frame.total)) : 0;
      bar.dataset.percent = String(pct);
      bar.setAttribute("aria-valuetext", `${pct} %`);
      if (percent) percent.textContent = `${pct} %`;
      const rate = frame.bars_per_s ? ` · ${Math.round(frame.bars_per_s).toLocaleString()} bars/s` : "";
      const eta = frame.eta_s ? ` · about ${Math.ceil(frame.eta_s)} s left` : "";
      text.textContent = `${(frame.done || 0).toLocaleString()} / ${(frame.total || 0).toLocaleString()} bars${rate}${eta}`;
      if (status && frame.status) status.textContent = frame.status;
      if (["succeeded", "failed", "cancelled"].includes(frame.status)) {
        text.textContent += " — finished, loading the results…";
        setTimeout(() => location.reload(), 500);
      }
    },
  });
}

function init() {
  const backtest = document.querySelector('[data-live-scope="backtest"]');
  if (backtest) initBacktest(backtest);
  initTabs(document);
  initEquity(document);
  const detail = document.querySelector('[data-live-scope="instance"]');
  if (detail) initInstanceDetail(detail);
  const list = document.querySelector('[data-live-scope="tenant"]');
  if (list) initTenantList(list);
  document.querySelectorAll("[data-live-indicator]").forEach((node) => {
    if (!detail && !list && !backtest) node.textContent = "";
  });
}

document.addEventListener("DOMContentLoaded", init);
