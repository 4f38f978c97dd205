// The in-app inbox, fed by the tenant websocket (ws/tenant/): each {"kind": "notification"} frame
// (stratbox.notifications.services.inbox_message) bumps the nav's unread badge and, on the
// notifications page, puts the item at the top of the inbox list. Frame text goes in as text only.

function text(tag, className, value) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.textContent = value === null || value === undefined ? "" : String(value);
  return node;
}

function bumpBadge() {
  let badge = document.querySelector("[data-inbox-badge]");
  if (!badge) {
    const link = document.getElementById("nav-notifications");
    if (!link) return;
    badge = text("span", "badge", "0");
    badge.setAttribute("data-inbox-badge", "");
    link.append(" ", badge);
  }
  badge.textContent = String((parseInt(badge.textContent, 10) || 0) + 1);
}

function stamp(iso) {
  const d = iso ? new Date(iso) : new Date();
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function prependItem(frame) {
  const list = document.querySelector("[data-inbox-list]");
  if (!list) return;
  const id = String(frame.id ?? "");
  if (id && [...list.children].some((li) => li.dataset.inboxId === id)) return;
  const item = document.createElement("li");
  item.className = "unread";
  item.dataset.event = String(frame.event_type || "");
  if (id) item.dataset.inboxId = id;
  item.append(
    text("span", "badge", frame.event_type_label || frame.event_type || ""),
    " ",
    text("b", "", frame.title),
    " ",
    text("span", "muted small", stamp(frame.created_at)),
    text("pre", "small pre-wrap", frame.body),
  );
  list.prepend(item);
  list.hidden = false;
  document.querySelectorAll("[data-inbox-empty]").forEach((node) => node.remove());
  const unread = document.getElementById("inbox-unread");
  if (unread) unread.textContent = `${(parseInt(unread.textContent, 10) || 0) + 1} unread`;
}

/** Handle one frame of the tenant socket (ignores everything but notifications). */
export function inboxFrame(frame) {
  if (!frame || frame.kind !== "notification") return;
  bumpBadge();
  prependItem(frame);
}
