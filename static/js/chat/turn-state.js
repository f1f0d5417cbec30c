// Where the turns in flight are, moved along by the server's events (docs/protocol.md): the page
// says from these what is happening and whether there is anything to cancel.

/** A turn's phase on this page; ENDED also stands for a turn the page does not follow (any more). */
export const Phase = Object.freeze({
  HEARING: "hearing", // speech_started → speech_stopped
  TRANSCRIBING: "transcribing", // speech_stopped → final_transcript ("No speech recognised.", an error)
  REPLYING: "replying", // final_transcript → turn_complete
  ENDED: "ended",
});

// The moves a turn may make. A typed turn begins at its final transcript; turn_complete ends a turn
// in any phase; ending a turn that has ended already changes nothing.
const NEXT = Object.freeze({
  [Phase.ENDED]: [Phase.HEARING, Phase.REPLYING, Phase.ENDED],
  [Phase.HEARING]: [Phase.TRANSCRIBING, Phase.ENDED],
  [Phase.TRANSCRIBING]: [Phase.REPLYING, Phase.ENDED],
  [Phase.REPLYING]: [Phase.ENDED],
});

// speech_stopped for these reasons leaves no turn to transcribe.
const NO_TURN = new Set(["cancelled", "too_short"]);

/** An event that does not fit the phase its turn is in: the page and the server disagree. */
export class TurnStateError extends Error {
  constructor(turnId, from, to) {
    super(`turn ${turnId} cannot go from ${from} to ${to}`);
    this.name = "TurnStateError";
  }
}

/**
 * The page follows one turn per phase, the latest: a newer turn takes a phase over from an older
 * one, whose later events then apply to it as to a turn new to the page. Playback is apart: a reply
 * is heard while it is still being generated, and after it.
 */
export class TurnStates {
  #turnIn = new Map(); // phase → the turn in it
  #playing = null; // turn whose audio is playing

  /** The turn in `phase`, or null. */
  current(phase) {
    return this.#turnIn.get(phase) ?? null;
  }

  /** Where `turnId` is. */
  phaseOf(turnId) {
    for (const [phase, id] of this.#turnIn) if (id === turnId) return phase;
    return Phase.ENDED;
  }

  /** Some turn is heard, transcribed or answered. */
  get inFlight() {
    return this.#turnIn.size > 0;
  }

  get playing() {
    return this.#playing;
  }

  /** Move `turnId` to phase `to`; a move the table does not allow throws TurnStateError. */
  move(turnId, to) {
    const from = this.phaseOf(turnId);
    if (!NEXT[from].includes(to)) throw new TurnStateError(turnId, from, to);
    this.#turnIn.delete(from);
    if (to !== Phase.ENDED) this.#turnIn.set(to, turnId);
  }

  /**
   * Follow a server message (those that concern no turn's phase are ignored). One that does not fit
   * is logged as an error and leaves the phases as they were: the page carries on.
   */
  apply(message) {
    try {
      this.#apply(message);
    } catch (error) {
      if (!(error instanceof TurnStateError)) throw error;
      console.error(`${error.message} on ${message.type}`);
    }
  }

  #apply(message) {
    const turnId = message.turn_id;
    switch (message.type) {
      case "speech_started":
        this.move(turnId, Phase.HEARING);
        break;
      case "speech_stopped":
        this.move(turnId, NO_TURN.has(message.reason) ? Phase.ENDED : Phase.TRANSCRIBING);
        break;
      case "final_transcript":
        this.move(turnId, Phase.REPLYING);
        break;
      case "info":
      case "error":
        // The turn's words will not come ("No speech recognised.", a failed transcription).
        if (turnId && this.phaseOf(turnId) === Phase.TRANSCRIBING) this.move(turnId, Phase.ENDED);
        break;
      case "turn_complete":
        this.move(turnId, Phase.ENDED);
        break;
    }
  }

  /** The connection is gone: the server finishes the turns in flight, and the page learns from storage. */
  connectionLost() {
    this.#turnIn.clear();
  }

  playStarted(turnId) {
    this.#playing = turnId;
  }

  playEnded(turnId) {
    if (this.#playing === turnId) this.#playing = null;
  }
}
