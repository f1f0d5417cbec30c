// Settles what the page lost track of: turns in flight when a connection ended, turns a reload
// rendered while the previous page's session was still finishing them, and typed messages sent just
// before a drop. Their stored state comes from the conversation's turns.json (what a reload would
// show). A turn stored as pending is asked about again, with backoff, until its session finishes it;
// one the server never stored is given up after a few answers (it held no words, or was lost).

const RECHECK_MS = [500, 1000, 2000, 4000, 8000, 15000];
const GIVE_UP_MISSING_AFTER = 5; // answers without the turn (about 8 s of checks)
const GIVE_UP_PENDING_AFTER = 12; // answers with the turn still pending (about 1.5 min)
const LOOKBACK = 20; // latest stored turns to ask for, besides the ones being looked for
const MAX_ROUNDS = 16; // rechecks (about 3 min) before waiting for the next session to ask again

export class TurnRecovery {
  #transcript;
  #urlOf;
  #tracked = new Map(); // turn id → answers so far without an outcome
  #timer = 0;
  #round = 0;
  #inFlight = null;
  #looking = 0; // typed messages being looked up

  /** `urlOf()` is the conversation's turns.json URL, or "" while there is no conversation yet. */
  constructor(transcript, urlOf) {
    this.#transcript = transcript;
    this.#urlOf = urlOf;
  }

  /** Follow these turns until the server says how they ended; check() asks. */
  track(turnIds) {
    for (const turnId of turnIds) {
      if (this.#tracked.has(turnId)) continue;
      this.#tracked.set(turnId, 0);
      this.#transcript.checking(turnId);
    }
  }

  /** Ask now, then again with backoff while a tracked turn has no outcome: the stored turns, or null
   * (nothing to ask about, or the server could not be asked). */
  check() {
    if (this.#tracked.size === 0 && this.#looking === 0) return Promise.resolve(null);
    clearTimeout(this.#timer);
    this.#round = 0;
    return this.#ask();
  }

  /** Of typed messages ({text, exchange}) sent as a connection ended, settle those the server stored
   * and return the others (to be sent again), or null if the server could not be asked. */
  async findTyped(entries) {
    this.#looking += entries.length;
    const turns = await this.check();
    this.#looking -= entries.length;
    if (turns === null) return null;
    const known = new Set(this.#transcript.turnIds());
    const candidates = turns.filter((turn) => turn.source === "text" && !known.has(turn.turn_id));
    const unsent = [];
    for (const entry of entries) {
      const index = candidates.findIndex((turn) => turn.user_text === entry.text.trim());
      if (index < 0) {
        unsent.push(entry);
        continue;
      }
      const turn = candidates[index];
      candidates.splice(0, index + 1); // stored in the order they were sent: the next one is later
      this.#transcript.adopt(entry.exchange, turn.turn_id);
      if (turn.status === "pending") this.track([turn.turn_id]);
      else this.#transcript.restore(turn.turn_id, turn);
    }
    this.#recheckLater();
    return unsent;
  }

  #ask() {
    this.#inFlight ??= this.#fetch().then((turns) => {
      this.#inFlight = null;
      if (turns !== null) this.#apply(turns);
      this.#recheckLater();
      return turns;
    });
    return this.#inFlight;
  }

  #recheckLater() {
    clearTimeout(this.#timer);
    if (this.#tracked.size === 0 || this.#round >= MAX_ROUNDS) return;
    const delay = RECHECK_MS[Math.min(this.#round, RECHECK_MS.length - 1)];
    this.#round += 1;
    this.#timer = setTimeout(() => this.#ask(), delay);
  }

  async #fetch() {
    const url = this.#urlOf();
    if (!url) return null;
    const last = LOOKBACK + this.#tracked.size + this.#looking;
    try {
      const response = await fetch(`${url}?last=${last}`, { cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) return null;
      return (await response.json()).turns;
    } catch {
      return null; // the server is unreachable, or we were signed out (a login page is not JSON)
    }
  }

  /** Settle the tracked turns these stored turns answer; give up on those that never end. */
  #apply(turns) {
    const stored = new Map(turns.map((turn) => [turn.turn_id, turn]));
    for (const [turnId, answers] of this.#tracked) {
      const turn = stored.get(turnId);
      if (turn && turn.status !== "pending") {
        this.#tracked.delete(turnId);
        this.#transcript.restore(turnId, turn);
      } else if (answers + 1 >= (turn ? GIVE_UP_PENDING_AFTER : GIVE_UP_MISSING_AFTER)) {
        this.#tracked.delete(turnId);
        this.#transcript.abandon(turnId);
      } else {
        this.#tracked.set(turnId, answers + 1);
      }
    }
  }
}
