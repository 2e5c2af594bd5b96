// The websocket of one run (`/ws/runs/<id>/?after=<seq>`, API.md): frames handled one at
// a time and in order, reconnection with backoff after a drop, resuming after the last
// seq seen, until the server's `end` frame.

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10000];
// The server's close code when this user holds too many live logs (API.md): reconnecting
// would only take the place of another of the user's tabs, so stop and say so.
const TOO_MANY_SOCKETS = 4429;

export class RunSocket {
  /**
   * @param {object} o
   * @param {string} o.path       /ws/runs/<id>/
   * @param {() => number} o.after  the last seq seen, asked at every (re)connect
   * @param {(frame: object) => Promise<void>|void} o.onFrame  called in order, awaited
   * @param {(status: "connecting"|"streaming"|"reconnecting"|"ended"|"refused") => void} o.onStatus
   * @param {() => void} o.onOpen  each successful (re)connect
   */
  constructor({ path, after, onFrame, onStatus, onOpen }) {
    Object.assign(this, { path, after, onFrame, onStatus, onOpen });
    this.failures = 0;
    this.ended = false;
    this.chain = Promise.resolve();
    this.socket = null;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${this.path}?after=${this.after()}`);
    this.socket = socket;
    this.onStatus(this.failures ? "reconnecting" : "connecting");
    socket.addEventListener("open", () => {
      this.failures = 0;
      this.onStatus("streaming");
      this.onOpen();
    });
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "end") this.ended = true;
      this.chain = this.chain.then(() => this.onFrame(frame)).catch((err) => console.error("run frame", err));
    });
    socket.addEventListener("close", (event) => this.closed(socket, event.code));
  }

  closed(socket, code) {
    if (socket !== this.socket) return;
    if (this.ended) {
      this.chain.then(() => this.onStatus("ended"));
      return;
    }
    if (code === TOO_MANY_SOCKETS) {
      this.chain.then(() => this.onStatus("refused"));
      return;
    }
    // Wait for the frames already received, so `after` is the last seq really seen.
    const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)] * (0.8 + Math.random() * 0.4);
    this.failures += 1;
    this.onStatus("reconnecting");
    this.chain.then(() => setTimeout(() => this.connect(), delay));
  }

  /** Drop the connection as a network failure would (tests, and a stale tab waking up). */
  drop() {
    if (this.socket) this.socket.close(4000, "client drop");
  }
}
