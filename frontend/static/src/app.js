// Stratbox web UI: htmx plus a few small behaviours shared by every page.
// Bundled by esbuild into static/build/app.js (see frontend/package.json).
import htmx from "htmx.org";
import { inboxFrame } from "./lib/inbox.js";
import { liveSocket } from "./lib/socket.js";

window.htmx = htmx;

// htmx requests carry Django's CSRF token (read from the <meta> tag the base layout renders).
document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRFToken"] = meta.content;
});

// Server errors inside an htmx swap must never show a raw traceback: show a short notice instead.
document.addEventListener("htmx:responseError", (event) => {
  const region = document.getElementById("live-notices");
  if (!region) return;
  const status = event.detail.xhr ? event.detail.xhr.status : "?";
  region.textContent = `The server could not complete that request (HTTP ${status}). Please retry.`;
  region.hidden = false;
});

// Each behaviour binds once per element: init() runs for the document and again for every htmx
// swap (htmx fires htmx:load on <body> at start-up too), so without this mark a button would get
// two click handlers — and ask "Activate?" twice.
function once(root, selector, name, bind) {
  const nodes = [...root.querySelectorAll(selector)];
  if (root.matches && root.matches(selector)) nodes.unshift(root);
  nodes.forEach((node) => {
    const key = `sbBound${name}`;
    if (node.dataset[key]) return;
    node.dataset[key] = "1";
    bind(node);
  });
}

// Progressive enhancement for the upload form: show only the fields of the chosen upload kind.
function initUploadKind(root) {
  once(root, "[data-upload-kind]", "Kind", (form) => {
    const apply = () => {
      const checked =
        form.querySelector('input[name="kind"]:checked') || form.querySelector('input[name="kind"][type="hidden"]');
      const kind = checked ? checked.value : "single";
      form.querySelectorAll("[data-kind-section]").forEach((section) => {
        const visible = section.dataset.kindSection === kind;
        section.hidden = !visible;
        section.querySelectorAll("input, textarea, select").forEach((el) => {
          el.disabled = !visible;
        });
      });
    };
    form.querySelectorAll('input[name="kind"]').forEach((radio) => radio.addEventListener("change", apply));
    apply();
  });
}

// Buttons with data-confirm ask before submitting (used by mode controls that start trading).
function initConfirm(root) {
  once(root, "[data-confirm]", "Confirm", (el) => {
    el.addEventListener("click", (event) => {
      if (!window.confirm(el.dataset.confirm)) event.preventDefault();
    });
  });
}

// Times are rendered in UTC by the server; show them in the viewer's time zone, with how long
// ago in the tooltip (and in the text for the last hour, where "2 min ago" reads better).
const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function relative(date) {
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 60) return RELATIVE.format(seconds, "second");
  if (abs < 3600) return RELATIVE.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return RELATIVE.format(Math.round(seconds / 3600), "hour");
  return RELATIVE.format(Math.round(seconds / 86400), "day");
}

function localTime(node) {
  const date = new Date(node.getAttribute("datetime"));
  if (Number.isNaN(date.getTime())) return;
  const today = new Date().toDateString() === date.toDateString();
  const time = date.toLocaleTimeString(undefined, { hour12: false });
  const day = date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  const withSeconds = node.textContent.split(":").length > 2;
  const clock = withSeconds ? time : time.slice(0, 5);
  node.textContent = today ? clock : `${day} ${clock}`;
  node.title = `${relative(date)} · ${date.toISOString().replace(".000Z", "Z")}`;
  if (node.hasAttribute("data-relative")) node.textContent = relative(date);
}

function initTimes(root) {
  once(root, "time[datetime]", "Time", localTime);
}

// Jump links from an error list to the offending source line.
function initLineLinks(root) {
  once(root, "[data-goto-line]", "Goto", (link) => {
    link.addEventListener("click", (event) => {
      const target = document.getElementById(link.getAttribute("href").slice(1));
      if (!target) return;
      event.preventDefault();
      target.scrollIntoView({ block: "center" });
      target.focus({ preventScroll: true });
    });
  });
}

// A form with data-upload-progress sends a chosen file with XHR so that the upload shows its
// progress (a CSV of a million bars is ~50 MB), then says it is importing while the server parses
// and stores the bars. The server's answer replaces the page as a normal submit would (the redirect
// to the new backtest, or the form with its errors). Without a file it is a normal submit.
function initUploadProgress(root) {
  once(root, "form[data-upload-progress]", "Progress", (form) => {
    const bar = form.querySelector("[data-upload-bar]");
    const label = form.querySelector("[data-upload-label]");
    form.addEventListener("submit", (event) => {
      const files = [...form.querySelectorAll('input[type="file"]')].filter((i) => i.files && i.files.length);
      if (!files.length || !bar || !window.FormData) return;
      event.preventDefault();
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action || window.location.href);
      bar.hidden = false;
      bar.closest("[data-upload-status]").hidden = false;
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        const pct = Math.round((100 * e.loaded) / e.total);
        bar.value = pct;
        bar.dataset.percent = String(pct);
        label.textContent = `Uploading… ${pct} %`;
      });
      xhr.upload.addEventListener("load", () => {
        bar.value = 100;
        bar.dataset.percent = "100";
        bar.removeAttribute("value"); // indeterminate while the server parses and stores the bars
        label.textContent = "Importing the bars…";
      });
      xhr.addEventListener("load", () => {
        if (xhr.responseURL && xhr.responseURL !== window.location.href && xhr.status < 400) {
          window.location.assign(xhr.responseURL);
          return;
        }
        document.open();
        document.write(xhr.responseText);
        document.close();
      });
      xhr.addEventListener("error", () => {
        label.textContent = "The upload failed (connection lost). Please retry.";
      });
      xhr.send(new FormData(form));
    });
  });
}

function init(root) {
  initUploadKind(root);
  initUploadProgress(root);
  initConfirm(root);
  initLineLinks(root);
  initTimes(root);
}

window.StratboxUI = { initTimes };

document.addEventListener("DOMContentLoaded", () => init(document));
document.addEventListener("htmx:load", (event) => init(event.target));

// The in-app inbox: logged-in pages of a tenant hold the tenant websocket once. The instance list
// already opens it (live.js, data-live-scope="tenant") and feeds the inbox from there, so only
// pages without it open one here.
document.addEventListener("DOMContentLoaded", () => {
  const link = document.querySelector("[data-inbox-socket]");
  if (!link) return;
  const path = link.dataset.inboxSocket;
  if (document.querySelector(`[data-live-socket="${path}"]`)) return;
  liveSocket(path, { onEvent: inboxFrame, onState: () => {} });
});
