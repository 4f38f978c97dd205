// Stratbox web UI: htmx plus a few small behaviours shared by every page.
// Bundled by esbuild into static/build/app.js (see frontend/package.json).
import htmx from "htmx.org";

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

// Progressive enhancement for the upload form: show only the fields of the chosen upload kind.
function initUploadKind(root) {
  root.querySelectorAll("[data-upload-kind]").forEach((form) => {
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
  root.querySelectorAll("[data-confirm]").forEach((el) => {
    el.addEventListener("click", (event) => {
      if (!window.confirm(el.dataset.confirm)) event.preventDefault();
    });
  });
}

// Jump links from an error list to the offending source line.
function initLineLinks(root) {
  root.querySelectorAll("[data-goto-line]").forEach((link) => {
    link.addEventListener("click", (event) => {
      const target = document.getElementById(link.getAttribute("href").slice(1));
      if (!target) return;
      event.preventDefault();
      target.scrollIntoView({ block: "center" });
      target.focus({ preventScroll: true });
    });
  });
}

function init(root) {
  initUploadKind(root);
  initConfirm(root);
  initLineLinks(root);
}

document.addEventListener("DOMContentLoaded", () => init(document));
document.addEventListener("htmx:load", (event) => init(event.target));
