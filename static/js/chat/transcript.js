// The conversation on screen: one exchange per turn (your words, the reply, a meta line), built from
// server events. The markup matches the turns chat.html renders from the stored conversation, and
// the rendered turns are picked up, so a turn stored as pending can be settled later like a live one.
// The log sticks to the bottom as it grows unless the reader has scrolled up.

import { h } from "./dom.js";
import { formatMs, latencyDetails } from "./latency.js";

const STICK_PX = 96;
const STATUS_LABELS = { interrupted: "Interrupted", cancelled: "Cancelled", failed: "Failed" };
const CHECKING = "Checking with the server…";

class Exchange {
  constructor(turnId) {
    this.userText = h("span", { class: "bubble-text" });
    this.userLabel = h("span", { class: "bubble-label" }, "You");
    this.user = h("p", { class: "bubble bubble-user" }, this.userLabel, this.userText);
    this.meta = h("div", { class: "turn-meta" });
    this.root = h("li", { class: "exchange" }, this.user, this.meta);
    this.assistant = null;
    this.assistantText = null;
    if (turnId) this.bind(turnId);
  }

  /** An exchange the server rendered (chat.html). */
  static fromElement(root) {
    const exchange = Object.create(Exchange.prototype);
    exchange.root = root;
    exchange.user = root.querySelector(".bubble-user");
    exchange.userLabel = exchange.user.querySelector(".bubble-label");
    exchange.userText = exchange.user.querySelector(".bubble-text");
    exchange.meta = root.querySelector(".turn-meta");
    exchange.assistant = root.querySelector(".bubble-assistant");
    exchange.assistantText = exchange.assistant?.querySelector(".bubble-text") ?? null;
    return exchange;
  }

  /** Give the exchange its turn id (a typed message gets one when the server accepts it). */
  bind(turnId) {
    this.root.dataset.turnId = turnId;
  }

  setUser(text, state) {
    this.userText.textContent = text;
    this.user.classList.toggle("is-partial", state === "partial");
    this.user.classList.toggle("is-pending", state === "pending");
    this.user.classList.toggle("is-failed", state === "failed");
  }

  ensureAssistant() {
    if (!this.assistant) {
      this.assistantText = h("span", { class: "bubble-text" });
      const label = h(
        "span",
        { class: "bubble-label" },
        "Assistant",
        h("span", { class: "speaking", "aria-hidden": "true" }, h("i"), h("i"), h("i"), h("i")),
      );
      this.assistant = h("p", { class: "bubble bubble-assistant" }, label, this.assistantText);
      this.root.insertBefore(this.assistant, this.meta);
    }
    return this.assistant;
  }

  /** A line about the exchange's delivery (waiting, checking, not sent), with an optional action. */
  note(text, { error = false, action = null } = {}) {
    this.meta.querySelector(".turn-note")?.remove();
    if (!text) return;
    const note = h("span", { class: error ? "turn-note turn-error" : "turn-note" }, text);
    if (action) {
      const button = h("button", { type: "button", class: "button button-small" }, action.label);
      button.addEventListener("click", action.onClick);
      note.append(" ", button);
    }
    this.meta.append(note);
  }

  badge(status) {
    this.meta.querySelector(".badge")?.remove();
    if (STATUS_LABELS[status]) {
      this.meta.prepend(h("span", { class: `badge badge-${status}` }, STATUS_LABELS[status]));
    }
  }
}

export class Transcript {
  #list;
  #scroller;
  #empty;
  #exchanges = new Map();

  constructor({ list, scroller, empty }) {
    this.#list = list;
    this.#scroller = scroller;
    this.#empty = empty;
    for (const root of list.querySelectorAll(".exchange[data-turn-id]")) {
      this.#exchanges.set(root.dataset.turnId, Exchange.fromElement(root));
    }
    // The server renders stored turns' latency in milliseconds; write it as live turns show it.
    for (const value of list.querySelectorAll(".latency-chip [data-ms]")) {
      value.textContent = formatMs(Number(value.dataset.ms));
    }
    this.#scroller.scrollTop = this.#scroller.scrollHeight;
  }

  /** speech_started: a new turn whose words are still coming. */
  listening(turnId) {
    this.#update(() => this.#exchange(turnId).setUser("Listening…", "partial"));
  }

  /** partial_transcript: the words so far, replaced as they change. */
  partial(turnId, text) {
    this.#update(() => this.#exchange(turnId).setUser(text, "partial"));
  }

  /** speech_stopped: the utterance ended, the final transcript is being decoded. */
  transcribing(turnId) {
    const exchange = this.#exchanges.get(turnId);
    if (exchange && exchange.userText.textContent === "Listening…") exchange.setUser("Transcribing…", "partial");
  }

  /** A turn that produced no words (no speech recognised, or cancelled while speaking). */
  discard(turnId) {
    const exchange = this.#exchanges.get(turnId);
    if (!exchange || exchange.assistant) return;
    exchange.root.remove();
    this.#exchanges.delete(turnId);
    this.#syncEmpty();
  }

  /** A typed message, shown at once; returns its exchange, which the outbox delivers. */
  typed(text) {
    const exchange = new Exchange(null);
    this.#update(() => {
      exchange.userLabel.textContent = "You · typed";
      exchange.setUser(text, "pending");
      this.#append(exchange);
    });
    return exchange;
  }

  /**
   * A typed message's delivery: "queued" (waits for the connection), "paced" (connected, but waits
   * for the messages before it: the server takes a few at once, then one every 2 s), "sending",
   * "checking" (sent as the connection dropped), or "failed" (the server could not say whether it
   * has it; `retry` sends it again).
   */
  delivery(exchange, state, retry = null) {
    if (state === "queued") exchange.note("Not sent yet: waiting for the connection.");
    else if (state === "paced") exchange.note("Not sent yet: it goes after the messages before it.");
    else if (state === "sending") exchange.note(null);
    else if (state === "checking") exchange.note(CHECKING);
    else {
      exchange.setUser(exchange.userText.textContent, "failed");
      const action = retry && { label: "Send again", onClick: retry };
      exchange.note("The connection dropped before the server confirmed this message.", { error: true, action });
    }
  }

  /** The server took typed message `exchange` as turn `turnId`. */
  adopt(exchange, turnId) {
    exchange.bind(turnId);
    exchange.note(null);
    this.#exchanges.set(turnId, exchange);
  }

  /** Take a typed message off the log (it is being sent again as a new one). */
  remove(exchange) {
    exchange.root.remove();
    this.#syncEmpty();
  }

  /** final_transcript: the words of the turn, final. */
  final(turnId, text, source) {
    this.#update(() => {
      const exchange = this.#exchange(turnId);
      if (source === "text") exchange.userLabel.textContent = "You · typed";
      exchange.setUser(text, "final");
      exchange.ensureAssistant().classList.add("is-thinking");
    });
  }

  /** llm_token: one more piece of the reply. */
  token(turnId, text) {
    if (!text) return;
    this.#update(() => {
      const exchange = this.#exchange(turnId);
      exchange.ensureAssistant().classList.remove("is-thinking");
      exchange.assistantText.textContent += text;
    });
  }

  /** The reply's audio state: "playing", "played" or "stopped", with the seconds played so far. */
  audio(turnId, state, playedS) {
    const bubble = this.#exchanges.get(turnId)?.assistant;
    if (!bubble) return;
    bubble.dataset.audioState = state;
    if (playedS !== undefined) bubble.dataset.playedS = playedS.toFixed(2);
  }

  /** After an interruption: dim the words the listener did not hear. */
  heard(turnId, heardText) {
    const exchange = this.#exchanges.get(turnId);
    if (!exchange?.assistantText) return;
    const shown = exchange.assistantText.textContent;
    const heardWords = heardText.split(/\s+/).filter(Boolean).length;
    const pieces = shown.match(/\s*\S+/g) ?? [];
    const unheard = pieces.slice(heardWords).join("");
    if (!unheard.trim()) return;
    exchange.assistantText.replaceChildren(
      pieces.slice(0, heardWords).join(""),
      h("span", { class: "unheard", title: "Not played: you interrupted" }, unheard),
    );
  }

  /** turn_complete: the turn's outcome. */
  complete(turnId, status) {
    const exchange = this.#exchanges.get(turnId);
    if (!exchange) return;
    exchange.root.dataset.status = status;
    exchange.assistant?.classList.remove("is-thinking");
    if (exchange.assistant && !exchange.assistantText.textContent) {
      exchange.assistant.classList.add("bubble-empty");
      exchange.assistantText.textContent = status === "failed" ? "No reply." : "Stopped before replying.";
    }
    exchange.badge(status);
  }

  /** The ids of the turns shown. */
  turnIds() {
    return [...this.#exchanges.keys()];
  }

  /** Turns shown without an outcome (live ones not complete yet, ones the server rendered pending):
   * [{turnId, userText}]. */
  unsettledTurns() {
    return [...this.#exchanges]
      .filter(([, exchange]) => exchange.root.isConnected && [undefined, "pending"].includes(exchange.root.dataset.status))
      .map(([turnId, exchange]) => ({ turnId, userText: exchange.userText.textContent }));
  }

  /** A turn the previous page was waiting for, with the words it showed, unless the server rendered it. */
  placeholder(turnId, userText) {
    if (this.#exchanges.has(turnId)) return;
    this.#update(() => this.#exchange(turnId).setUser(userText, "partial"));
  }

  /** Turn `turnId` belongs to a connection that ended: its outcome is being asked of the server. */
  checking(turnId) {
    const exchange = this.#exchanges.get(turnId);
    exchange?.assistant?.classList.remove("is-thinking");
    exchange?.note(CHECKING);
  }

  /** A turn as the server stored it ({user_text, assistant_text, status}): what was heard, and its end. */
  restore(turnId, stored) {
    const exchange = this.#exchanges.get(turnId);
    if (!exchange) return;
    this.#update(() => {
      exchange.note(null);
      exchange.setUser(stored.user_text, "final");
      exchange.ensureAssistant().classList.remove("bubble-empty");
      exchange.assistantText.textContent = stored.assistant_text;
      this.complete(turnId, stored.status);
    });
  }

  /** The server never stored turn `turnId`: drop it if no words were heard, else say it was not kept. */
  abandon(turnId) {
    const exchange = this.#exchanges.get(turnId);
    if (!exchange) return;
    exchange.note(null);
    if (!exchange.user.classList.contains("is-partial")) {
      this.complete(turnId, "cancelled");
    } else if (/^(Listening|Transcribing)…$/.test(exchange.userText.textContent)) {
      this.discard(turnId);
    } else {
      exchange.setUser(exchange.userText.textContent, "failed");
      exchange.root.dataset.status = "failed";
      exchange.note("The connection dropped before this was transcribed.", { error: true });
    }
  }

  /** metrics: the latency chip under the turn. */
  metrics(turnId, metrics) {
    const details = latencyDetails(metrics);
    const exchange = this.#exchanges.get(turnId);
    if (!details || !exchange) return;
    this.#update(() => {
      exchange.meta.querySelector(".latency")?.remove();
      exchange.meta.append(details);
    });
  }

  /** An error that concerns one turn, shown under it. */
  error(turnId, text) {
    const exchange = this.#exchanges.get(turnId);
    if (!exchange) return false;
    this.#update(() => {
      if (exchange.user.classList.contains("is-partial")) {
        exchange.setUser(exchange.userText.textContent.replace(/^(Listening|Transcribing)…$/, "Not understood"), "failed");
        exchange.root.dataset.status = "failed"; // no transcript will come: the turn ends here
      }
      exchange.meta.append(h("span", { class: "turn-error" }, text));
    });
    return true;
  }

  #exchange(turnId) {
    let exchange = this.#exchanges.get(turnId);
    if (!exchange) {
      exchange = new Exchange(turnId);
      this.#exchanges.set(turnId, exchange);
      this.#append(exchange);
    }
    return exchange;
  }

  #append(exchange) {
    this.#list.append(exchange.root);
    this.#syncEmpty();
  }

  #syncEmpty() {
    this.#empty.hidden = this.#list.children.length > 0;
  }

  #update(change) {
    const scroller = this.#scroller;
    const stick = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < STICK_PX;
    change();
    if (stick) scroller.scrollTop = scroller.scrollHeight;
  }
}
