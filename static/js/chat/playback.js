// Reply audio: TTS chunks decoded and played strictly in `seq` order, each one started on the Web Audio
// clock exactly where the previous one ends, so phrases follow without gaps; replies play one after
// another. stop() cuts every sound at once and says how far into which chunk the listener got.
//
// Events: "start" {turnId} when a reply becomes audible, "played" {turnId, playedS} after each chunk,
// "finished" {turnId, playedS} after a reply's last chunk, "stopped" {turnId, playedS} when cut,
// "decodeerror" {turnId, seq}.

const LEAD_S = 0.05; // a chunk starts slightly after "now" so its first samples are never clipped
const KEPT_REPLIES = 16;

class Reply {
  constructor(turnId) {
    this.turnId = turnId;
    this.decoded = new Map(); // seq → AudioBuffer, or null when decoding failed
    this.next = 0; // the next seq to schedule
    this.received = 0; // one past the highest seq received
    this.complete = false; // tts_complete seen: no more chunks will come
    this.chunks = []; // scheduled chunks in seq order: {seq, start, duration, source, done}
    this.played = 0; // seconds played to the end
    this.stopped = false;
  }

  get finished() {
    return this.complete && this.next >= this.received && this.chunks.every((chunk) => chunk.done);
  }
}

export class Player extends EventTarget {
  #contextOf;
  #context = null;
  #gain = null;
  #volume = 1;
  #replies = new Map();
  #queue = []; // replies not yet fully scheduled, oldest first
  #end = 0; // context time at which the last scheduled chunk ends

  /** `contextOf()` returns the shared AudioContext, creating it if needed. */
  constructor(contextOf) {
    super();
    this.#contextOf = contextOf;
  }

  /** Playback volume, 0..1. */
  set volume(value) {
    this.#volume = value;
    if (this.#gain) this.#gain.gain.setTargetAtTime(value, this.#context.currentTime, 0.02);
  }

  /** True while audio is scheduled or waiting to be. */
  get busy() {
    return this.#queue.length > 0 || (this.#context !== null && this.#context.currentTime < this.#end);
  }

  /** Queue chunk `seq` of reply `turnId` (a base64 WAV file). */
  enqueue(turnId, seq, wavBase64) {
    const reply = this.#reply(turnId);
    if (reply.stopped) return;
    reply.received = Math.max(reply.received, seq + 1);
    this.#ensureContext()
      .decodeAudioData(base64ToBuffer(wavBase64))
      .then(
        (buffer) => reply.decoded.set(seq, buffer),
        () => {
          reply.decoded.set(seq, null);
          this.#emit("decodeerror", { turnId, seq });
        },
      )
      .then(() => this.#pump());
  }

  /** Reply `turnId` will get no more chunks (tts_complete, or the turn ended). */
  complete(turnId) {
    const reply = this.#replies.get(turnId);
    if (!reply || reply.complete) return;
    reply.complete = true;
    this.#pump();
    if (reply.finished && reply.chunks.length > 0 && !reply.stopped) {
      this.#emit("finished", { turnId, playedS: reply.played });
    }
  }

  /** Mark every reply complete: after a lost connection nothing more will come for them. */
  completeAll() {
    for (const turnId of [...this.#replies.keys()]) this.complete(turnId);
  }

  /**
   * Stop every sound now. With `turnId`, returns the playback report for that reply:
   * {seq, played_s}, the chunk being played and how far into it the listener got.
   */
  stop(turnId = null) {
    // The reply becomes known here if no chunk came yet, so chunks still in flight are dropped.
    const report = turnId === null ? null : this.#position(this.#reply(turnId));
    for (const reply of this.#replies.values()) {
      if (reply.stopped) continue;
      const audible = reply.chunks.some((chunk) => !chunk.done);
      reply.stopped = true;
      reply.decoded.clear();
      for (const chunk of reply.chunks) {
        if (chunk.done) continue;
        chunk.done = true;
        chunk.source.stop();
        chunk.source.disconnect();
      }
      if (reply.turnId === turnId) {
        this.#emit("stopped", { turnId, playedS: this.#heardSeconds(reply, report) });
      } else if (audible) {
        this.#emit("stopped", { turnId: reply.turnId, playedS: reply.played });
      }
    }
    this.#queue = [];
    this.#end = 0;
    return report;
  }

  #position(reply) {
    if (reply.chunks.length === 0) return { seq: reply.next, played_s: 0 };
    const latency = this.#context.outputLatency || this.#context.baseLatency || 0;
    const now = this.#context.currentTime - latency;
    for (const chunk of reply.chunks) {
      if (now < chunk.start) return { seq: chunk.seq, played_s: 0 };
      if (now < chunk.start + chunk.duration) return { seq: chunk.seq, played_s: round3(now - chunk.start) };
    }
    const last = reply.chunks.at(-1);
    return { seq: last.seq, played_s: round3(last.duration) };
  }

  #heardSeconds(reply, report) {
    const before = reply.chunks.filter((chunk) => chunk.seq < report.seq);
    return before.reduce((sum, chunk) => sum + chunk.duration, 0) + report.played_s;
  }

  #reply(turnId) {
    let reply = this.#replies.get(turnId);
    if (!reply) {
      reply = new Reply(turnId);
      this.#replies.set(turnId, reply);
      this.#queue.push(reply);
      this.#forgetOld();
    }
    return reply;
  }

  #forgetOld() {
    for (const [turnId, reply] of this.#replies) {
      if (this.#replies.size <= KEPT_REPLIES) return;
      if (reply.stopped || reply.finished) this.#replies.delete(turnId);
    }
  }

  #ensureContext() {
    if (this.#context === null) {
      this.#context = this.#contextOf();
      this.#gain = this.#context.createGain();
      this.#gain.gain.value = this.#volume;
      this.#gain.connect(this.#context.destination);
    }
    return this.#context;
  }

  #pump() {
    while (this.#queue.length > 0) {
      const reply = this.#queue[0];
      while (!reply.stopped && reply.decoded.has(reply.next)) {
        const buffer = reply.decoded.get(reply.next);
        reply.decoded.delete(reply.next);
        if (buffer) this.#schedule(reply, reply.next, buffer);
        reply.next += 1;
      }
      if (!reply.stopped && !(reply.complete && reply.next >= reply.received)) return;
      this.#queue.shift();
    }
  }

  #schedule(reply, seq, buffer) {
    const context = this.#context;
    const start = Math.max(context.currentTime + LEAD_S, this.#end);
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.#gain);
    source.start(start);
    const chunk = { seq, start, duration: buffer.duration, source, done: false };
    reply.chunks.push(chunk);
    this.#end = start + buffer.duration;
    if (reply.chunks.length === 1) {
      setTimeout(() => reply.stopped || this.#emit("start", { turnId: reply.turnId }), (start - context.currentTime) * 1000);
    }
    source.onended = () => {
      if (chunk.done) return; // cut by stop(), which reports it
      chunk.done = true;
      source.disconnect();
      reply.played += chunk.duration;
      this.#emit("played", { turnId: reply.turnId, playedS: reply.played });
      if (reply.finished) this.#emit("finished", { turnId: reply.turnId, playedS: reply.played });
    };
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function base64ToBuffer(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

function round3(seconds) {
  return Math.round(Math.max(0, seconds) * 1000) / 1000;
}
