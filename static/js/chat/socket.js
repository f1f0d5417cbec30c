// The /ws connection: JSON events in, JSON commands and binary PCM out. A dropped connection is
// retried with exponential backoff and resumes the same conversation (?conversation=<id>). While it
// waits, /health is polled: a server that was unreachable and answers again is reconnected to at
// once, while one that answers but refuses the socket keeps the backoff.
//
// Events: "state" {state, retryAt, code} (retryAt: Date.now() time of the next attempt, when one is
// scheduled) and "message" {message} for each server event. The state is OPEN before the `session`
// event is dispatched, so the handlers of that event can send at once.

import { ServerProbe } from "./server-probe.js";

export const State = Object.freeze({
  CONNECTING: "connecting",
  OPEN: "open", // the server's `session` event arrived
  RECONNECTING: "reconnecting", // waiting until retryAt, or until the server answers again
  PAUSED: "paused", // closed by the server for inactivity; reconnects when the user acts
  CLOSED: "closed", // refused for good (not signed in, not your conversation, too many sessions)
});

const RETRY_DELAYS_S = [0.5, 1, 2, 4, 8, 15];
const CLOSE_POLICY = 4008; // idle timeout or maximum session length
const FINAL_CLOSE_CODES = new Set([4401, 4404, 4429]);

export class VoiceSocket extends EventTarget {
  #path;
  #ws = null;
  #state = State.CLOSED;
  #failures = 0;
  #retryTimer = null;
  #probe;

  /** `healthUrl` is polled while reconnecting; `conversationId` resumes that conversation. */
  constructor(path, { conversationId = "", healthUrl = "" } = {}) {
    super();
    this.#path = path;
    this.conversationId = conversationId;
    this.#probe = new ServerProbe(healthUrl, () => this.#state === State.RECONNECTING && this.connect());
    window.addEventListener("online", () => this.#state === State.RECONNECTING && this.connect());
  }

  get state() {
    return this.#state;
  }

  get isOpen() {
    return this.#state === State.OPEN;
  }

  /** Consecutive connection attempts that failed before a session began. */
  get failures() {
    return this.#failures;
  }

  /** Connect now (also after a pause or a refusal, when the user asks to retry). */
  connect() {
    clearTimeout(this.#retryTimer);
    this.#detach();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = this.conversationId ? `?conversation=${encodeURIComponent(this.conversationId)}` : "";
    const ws = new WebSocket(`${scheme}//${location.host}${this.#path}${query}`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (event) => this.#onMessage(event);
    ws.onclose = (event) => this.#onClose(event);
    this.#ws = ws;
    this.#setState(State.CONNECTING);
  }

  /** Send a JSON command; false if not connected. */
  send(message) {
    if (!this.isOpen) return false;
    this.#ws.send(JSON.stringify(message));
    return true;
  }

  /** Send binary PCM; dropped (false) while disconnected, since stale audio is worse than none. */
  sendAudio(buffer) {
    if (!this.isOpen) return false;
    this.#ws.send(buffer);
    return true;
  }

  /** Close for good (the page is going away, or the user signed out). */
  close() {
    clearTimeout(this.#retryTimer);
    this.#probe.stop();
    this.#detach();
    this.#setState(State.CLOSED);
  }

  #detach() {
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = null;
      if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(1000);
    }
  }

  #onMessage(event) {
    if (typeof event.data !== "string") return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return; // the server only sends JSON; anything else is not ours to interpret
    }
    if (message.type === "session") {
      this.conversationId = message.conversation_id;
      this.#failures = 0;
      this.#probe.stop();
      this.#setState(State.OPEN);
    }
    this.dispatchEvent(new CustomEvent("message", { detail: message }));
  }

  #onClose(event) {
    const opened = this.#state === State.OPEN;
    this.#ws = null;
    if (FINAL_CLOSE_CODES.has(event.code)) {
      this.#probe.stop();
      this.#setState(State.CLOSED, { code: event.code });
    } else if (event.code === CLOSE_POLICY) {
      this.#probe.stop();
      this.#setState(State.PAUSED, { code: event.code });
    } else {
      if (!opened) this.#failures += 1;
      const base = RETRY_DELAYS_S[Math.min(this.#failures, RETRY_DELAYS_S.length - 1)];
      const delayMs = base * (0.8 + Math.random() * 0.4) * 1000;
      this.#retryTimer = setTimeout(() => this.connect(), delayMs);
      this.#setState(State.RECONNECTING, { code: event.code, retryAt: Date.now() + delayMs });
      this.#probe.start();
    }
  }

  #setState(state, extra = {}) {
    this.#state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...extra } }));
  }
}
