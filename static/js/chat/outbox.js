// Typed messages and their delivery. A message typed while a session is open is sent at once (and,
// like speech, interrupts a reply in progress). One typed while the connection is down waits here
// and is sent when the next session begins: in order, one at a time, each after the previous one's
// reply, so that messages written offline do not cut off one another's answers.
// A message sent just before the connection dropped may or may not have reached the server; it is
// looked up among the stored turns (recovery.js) and sent again only if the server does not have it.
// Messages go out no faster than the server takes them (the `typed_turn_*` limits of its session
// event): one typed faster than that waits here, instead of being refused with TEXT_TOO_FAST.

/** A token bucket: `burst` messages at once, then `perS` a second; reset for every session. */
class Allowance {
  constructor(perS = 0.5, burst = 5) {
    this.reset(perS, burst);
  }

  reset(perS, burst) {
    Object.assign(this, { perS, burst, tokens: burst, at: performance.now() });
  }

  take() {
    this.#refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until take() can succeed. */
  waitMs() {
    this.#refill();
    return Math.max(0, ((1 - this.tokens) / this.perS) * 1000);
  }

  #refill() {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perS);
    this.at = now;
  }
}

export class Outbox {
  #transcript;
  #send;
  #queue = []; // {text, exchange} not sent yet, oldest first
  #sent = []; // sent on this connection, awaiting their final_transcript, oldest first
  #unconfirmed = []; // sent on a connection that ended before their final_transcript came
  #answering = null; // turn of a message sent from the queue: the next one waits for its reply
  #open = false; // a session is open and the previous connection's messages are settled
  #connection = 0; // counts lost connections, so a lookup outlived by its connection is not applied
  #allowance = new Allowance();
  #paced = null; // timer of a pump waiting for the allowance

  /** `send(text)` sends a `text` command; true if it went out on an open session. */
  constructor(transcript, send) {
    this.#transcript = transcript;
    this.#send = send;
  }

  /** A message the person typed. */
  submit(typed) {
    const text = typed.toWellFormed?.() ?? typed; // a lone surrogate (from a paste) cannot be stored
    const entry = { text, exchange: this.#transcript.typed(text) };
    if (this.#open && this.#queue.length === 0 && this.#allowance.take() && this.#deliver(entry)) return;
    this.#queue.push(entry);
    this.#transcript.delivery(entry.exchange, this.#open ? "paced" : "queued");
    this.#pump();
  }

  /** The server's limits for typed messages, from its session event: a new session starts full. */
  setLimits(limits) {
    this.#allowance.reset(limits?.typed_turns_per_s ?? 0.5, limits?.typed_turn_burst ?? 5);
  }

  /** final_transcript of a typed turn: the server took the oldest message sent. After the server
   * said it is going down the connection still delivers the turns it finishes: such a message is
   * among the unconfirmed ones by then, and confirmed here it is not looked up and sent again. */
  confirm(turnId) {
    const entry = this.#sent.shift() ?? this.#unconfirmed.shift();
    if (!entry) return;
    this.#transcript.adopt(entry.exchange, turnId);
    if (entry.queued) this.#answering = turnId;
    this.#pump(); // a message held back by the allowance may go now
  }

  /** turn_complete: after the reply to a queued message, the next one goes. */
  turnEnded(turnId) {
    if (turnId !== this.#answering) return;
    this.#answering = null;
    this.#pump();
  }

  /** The connection ended, or the server said it is going down: nothing more is sent until resume(). */
  connectionLost() {
    this.#open = false;
    this.#answering = null;
    this.#connection += 1;
    for (const entry of this.#sent.splice(0)) {
      this.#transcript.delivery(entry.exchange, "checking");
      this.#unconfirmed.push(entry);
    }
  }

  /** The messages not sent yet, oldest first (for the page that replaces this one). */
  unsent() {
    return this.#queue.map((entry) => entry.text);
  }

  /** A session is open: settle the messages of the connection that ended, then send the queue. */
  async resume(recovery) {
    const connection = this.#connection;
    const unconfirmed = this.#unconfirmed.splice(0);
    const unsent = unconfirmed.length > 0 ? await recovery.findTyped(unconfirmed) : [];
    if (unsent === null) {
      for (const entry of unconfirmed) this.#fail(entry);
    } else {
      for (const entry of unsent) this.#transcript.delivery(entry.exchange, "queued");
      this.#queue.unshift(...unsent);
    }
    if (connection !== this.#connection) return; // lost again meanwhile: the next session sends them
    this.#open = true;
    this.#pump();
  }

  #pump() {
    clearTimeout(this.#paced);
    while (this.#open && this.#answering === null && this.#sent.length === 0 && this.#queue.length > 0) {
      if (!this.#allowance.take()) {
        this.#paced = setTimeout(() => this.#pump(), this.#allowance.waitMs());
        return;
      }
      const entry = this.#queue[0];
      entry.queued = true;
      if (!this.#deliver(entry)) return;
      this.#queue.shift();
    }
  }

  #deliver(entry) {
    if (!this.#send(entry.text)) return false;
    this.#transcript.delivery(entry.exchange, "sending");
    this.#sent.push(entry);
    return true;
  }

  /** The server could not say whether it has the message: say so, and offer to send it again. */
  #fail(entry) {
    this.#transcript.delivery(entry.exchange, "failed", () => {
      this.#transcript.remove(entry.exchange);
      this.submit(entry.text);
    });
  }
}
