// The conversation on screen: one exchange per turn (your words, the reply, a meta line), built from
// server events. The markup matches the turns chat.html renders from the stored conversation.
// The log sticks to the bottom as it grows unless the reader has scrolled up.

import { h } from "./dom.js";
import { formatMs, latencyDetails } from "./latency.js";

const STICK_PX = 96;
const STATUS_LABELS = { interrupted: "Interrupted", cancelled: "Cancelled", failed: "Failed" };

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
  #pendingTyped = [];

  constructor({ list, scroller, empty }) {
    this.#list = list;
    this.#scroller = scroller;
    this.#empty = empty;
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

  /** A typed message on its way; the server's final_transcript (source "text") adopts it. */
  sending(text) {
    this.#update(() => {
      const exchange = new Exchange(null);
      exchange.userLabel.textContent = "You · typed";
      exchange.setUser(text, "pending");
      this.#pendingTyped.push(exchange);
      this.#append(exchange);
    });
  }

  /** final_transcript: the words of the turn, final. */
  final(turnId, text, source) {
    this.#update(() => {
      let exchange = this.#exchanges.get(turnId);
      if (!exchange && source === "text" && this.#pendingTyped.length > 0) {
        exchange = this.#pendingTyped.shift();
        exchange.bind(turnId);
        this.#exchanges.set(turnId, exchange);
      }
      exchange ??= this.#exchange(turnId);
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
