// What the listener heard of each reply whose playback stopped early (barge-in, cancel): told to
// the server once per turn, and computed here as the server computes it from the same report.

export class HeardReplies {
  #phrases = new Map(); // turn → [{text, duration}] by seq
  #reported = new Set();

  /** tts_chunk: keep the phrase, to say later how much of it was heard. */
  phrase(message) {
    const phrases = this.#phrases.get(message.turn_id) ?? [];
    phrases[message.seq] = { text: message.text, duration: message.duration_s };
    this.#phrases.set(message.turn_id, phrases);
  }

  /**
   * The `playback` command for the player's `report` on reply `turnId` and the words heard, or null
   * once the turn has been reported.
   */
  report(turnId, report) {
    if (this.#reported.has(turnId)) return null;
    this.#reported.add(turnId);
    return {
      command: { type: "playback", turn_id: turnId, seq: report.seq, played_s: report.played_s },
      text: heardText(this.#phrases.get(turnId) ?? [], report),
    };
  }
}

/** The phrases before the one playing, and of that one the share of its words already played. */
function heardText(phrases, report) {
  const parts = [];
  phrases.forEach((phrase, seq) => {
    if (seq < report.seq) parts.push(phrase.text);
    else if (seq === report.seq) {
      const fraction = phrase.duration > 0 ? Math.min(1, Math.max(0, report.played_s / phrase.duration)) : 1;
      const words = phrase.text.split(/\s+/).filter(Boolean);
      parts.push(words.slice(0, Math.floor(words.length * fraction)).join(" "));
    }
  });
  return parts.filter(Boolean).join(" ");
}
