// The reconnecting websocket shared by live.js (dashboards) and app.js (the inbox on every page).
// Lives under lib/ so esbuild's `static/src/*.js` entry glob bundles it into both, not on its own.

export /** A websocket that reconnects with backoff and sends heartbeats; calls onEvent(frame) per frame. */
function liveSocket(path, { onEvent, onState }) {
  let socket = null;
  let heartbeat = null;
  let attempt = 0;
  let closedForGood = false;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;

  const connect = () => {
    onState("connecting");
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      attempt = 0;
      onState("live");
    });
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.kind === "hello") {
        clearInterval(heartbeat);
        const every = Math.max(1, Number(frame.heartbeat_s) || 5) * 1000;
        heartbeat = setInterval(() => {
          if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "heartbeat" }));
        }, every);
        return;
      }
      if (frame.kind === "pong") return;
      onEvent(frame);
    });
    socket.addEventListener("close", (event) => {
      clearInterval(heartbeat);
      // 44xx: refused (not logged in, not ours): retrying would not help.
      if (event.code >= 4400 && event.code < 4500) {
        closedForGood = true;
        onState(event.code === 4401 ? "signed-out" : "refused");
        return;
      }
      if (closedForGood) return;
      onState("reconnecting");
      attempt += 1;
      setTimeout(connect, Math.min(30000, 500 * 2 ** Math.min(attempt, 6)));
    });
  };
  connect();
  window.addEventListener("pagehide", () => {
    closedForGood = true;
    if (socket) socket.close();
  });
}
