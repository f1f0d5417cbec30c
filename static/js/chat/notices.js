// Server error codes in plain words, and the notice area that shows them (and client-side problems).

import { h } from "./dom.js";

const PLAIN_WORDS = {
  BAD_MESSAGE: "The page sent something the server did not understand. Reload the page if this keeps happening.",
  NOT_STARTED: "The microphone stream was not ready yet. Please try again.",
  UNSUPPORTED_SAMPLE_RATE: "The server cannot use this microphone's audio format.",
  FRAME_TOO_LARGE: "A piece of audio was too large for the server.",
  ASR_FAILED: "Sorry, that could not be transcribed. Please say it again.",
  ASR_TIMEOUT: "Transcribing took too long. Please try again, perhaps in shorter sentences.",
  MODEL_LOAD_FAILED: "Speech recognition is unavailable on the server right now. You can still type.",
  LLM_ERROR: "The assistant could not answer this time. Please try again in a moment.",
  LLM_TIMEOUT: "The assistant took too long to answer. Please try again.",
  TTS_FAILED: "Part of the reply could not be spoken; its text is shown.",
  TTS_TIMEOUT: "Part of the reply took too long to speak; its text is shown.",
  SESSION_LIMIT: "Too many voice sessions are open. Close another tab or window, then reconnect.",
  IDLE_TIMEOUT: "Paused after a while without activity. Talk or type to continue.",
  SESSION_EXPIRED: "This session reached its maximum length. Talk or type to continue in a new one.",
  UNAUTHORIZED: "This conversation is not available to you. Start a new conversation, or sign in again.",
  SHUTTING_DOWN: "The server is restarting. The chat reconnects by itself in a moment.",
  INTERNAL_ERROR: "Something went wrong on the server. Please try again.",
};

const AUTO_DISMISS_MS = 9000;

/** The plain-words explanation of a server `error` event. */
export function plainError(code, message) {
  return PLAIN_WORDS[code] ?? message ?? "Something went wrong.";
}

export class Notices {
  #area;
  #byKey = new Map();

  constructor(area) {
    this.#area = area;
  }

  /**
   * Show a notice; one per `key` (a newer one replaces it). `kind` is "error", "warning" or "info";
   * `sticky` notices stay until dismissed or cleared; `action` is an optional {label, href|onClick}.
   */
  show(text, { key = text, kind = "error", detail = "", sticky = false, action = null } = {}) {
    this.clear(key);
    const dismiss = h("button", { type: "button", class: "notice-dismiss", "aria-label": "Dismiss" }, "×");
    const body = h("div", { class: "notice-body" }, h("p", {}, text), detail ? h("p", { class: "notice-detail" }, detail) : null);
    const notice = h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, body);
    if (action) notice.append(actionElement(action));
    notice.append(dismiss);
    dismiss.addEventListener("click", () => this.clear(key));
    this.#area.append(notice);
    const timer = sticky ? null : setTimeout(() => this.clear(key), AUTO_DISMISS_MS);
    this.#byKey.set(key, { notice, timer });
  }

  /** Change the text of notice `key` in place (a countdown), if it is showing. */
  update(key, text) {
    const paragraph = this.#byKey.get(key)?.notice.querySelector(".notice-body p");
    if (paragraph && paragraph.textContent !== text) paragraph.textContent = text;
  }

  clear(key) {
    const entry = this.#byKey.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.notice.remove();
    this.#byKey.delete(key);
  }
}

function actionElement(action) {
  if (action.href) return h("a", { class: "button button-small", href: action.href }, action.label);
  const button = h("button", { type: "button", class: "button button-small" }, action.label);
  button.addEventListener("click", action.onClick);
  return button;
}
