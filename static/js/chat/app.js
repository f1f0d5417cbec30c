// The voice chat page: connects the socket, the microphone, the player and the views.
// It owns the capture mode (off, hands-free, push-to-talk) and turns server events into what the
// person sees and hears. Protocol: docs/protocol.md.

import { audioContext } from "./audio.js";
import { CAPTURE_RATE, Microphone, MicrophoneError } from "./capture.js";
import { Controls } from "./controls.js";
import { h } from "./dom.js";
import { Notices, plainError } from "./notices.js";
import { Player } from "./playback.js";
import { State, VoiceSocket } from "./socket.js";
import { Transcript } from "./transcript.js";

const Mode = Object.freeze({ OFF: "off", HANDS_FREE: "handsfree", PUSH_TO_TALK: "ptt" });
const MIC_IDLE_RELEASE_MS = 30000; // push-to-talk keeps the microphone warm between presses
const SIGN_IN_CHECK_AFTER = 2; // failed connection attempts before asking whether we are signed out
const CONNECTION_NOTICE = "connection";
const SERVER_INFO = "server-info";
const RESOLVED_BY_RECONNECTING = ["IDLE_TIMEOUT", "SESSION_EXPIRED", "SESSION_LIMIT"];

const STATUS_PILL = {
  [State.CONNECTING]: "Connecting…",
  [State.OPEN]: "Connected",
  [State.RECONNECTING]: "Reconnecting…",
  [State.PAUSED]: "Paused",
  [State.CLOSED]: "Disconnected",
};

class ChatApp {
  #root;
  #socket;
  #transcript;
  #notices;
  #player;
  #controls;
  #microphone = null;
  #micRelease = 0;
  #frameBytes;
  #mode = Mode.OFF;
  #serverListening = false; // the current connection got our `start`
  #utterance = null; // turn being spoken
  #transcribing = null; // turn whose utterance ended and whose final transcript is awaited
  #reply = null; // turn whose reply is in flight (final transcript → turn_complete)
  #speaking = null; // turn whose audio is playing
  #phrases = new Map(); // turn → [{text, duration}] by seq, to say what was heard
  #reported = new Set();
  #outbox = []; // typed messages waiting for a connection
  #bargeIn;
  #connectedOnce = false;
  #restarting = false; // the server said it is shutting down: the coming disconnect is a restart

  constructor(root) {
    const data = root.dataset;
    this.#root = root;
    this.#frameBytes = frameSize(Number(data.pcmChunkSize), Number(data.maxMessageBytes));
    this.#bargeIn = data.bargeIn === "true";
    this.#socket = new VoiceSocket(data.wsPath, data.conversationId);
    this.#transcript = new Transcript({
      list: root.querySelector("[data-log]"),
      scroller: root.querySelector("[data-scroller]"),
      empty: root.querySelector("[data-empty]"),
    });
    this.#notices = new Notices(root.querySelector("[data-notices]"));
    this.#player = new Player(audioContext);
    this.#controls = new Controls(root, {
      onHandsFree: () => this.#toggleHandsFree(),
      onPushStart: () => this.#pushStart(),
      onPushEnd: () => this.#pushEnd(),
      onCancel: () => this.#cancel(),
      onText: (text) => this.#sendText(text),
      onVolume: (volume) => {
        this.#player.volume = volume;
      },
    });
    this.#socket.addEventListener("message", (event) => this.#onMessage(event.detail));
    this.#socket.addEventListener("state", (event) => this.#onSocketState(event.detail));
    this.#bindPlayer();
    window.addEventListener("pagehide", () => {
      this.#socket.close();
      this.#microphone?.close();
    });
    // Back to a page kept in the back-forward cache: its connection was closed on the way out.
    window.addEventListener("pageshow", (event) => event.persisted && this.#socket.connect());
  }

  start() {
    this.#socket.connect();
    this.#render();
  }

  // -- capture ---------------------------------------------------------------------------------

  async #toggleHandsFree() {
    if (this.#mode === Mode.HANDS_FREE) {
      await this.#endCapture();
    } else if (this.#mode === Mode.OFF) {
      this.#setMode(Mode.HANDS_FREE);
      await this.#beginCapture();
    }
  }

  #pushStart() {
    if (this.#mode !== Mode.OFF) return;
    this.#setMode(Mode.PUSH_TO_TALK);
    this.#beginCapture();
  }

  #pushEnd() {
    if (this.#mode === Mode.PUSH_TO_TALK) this.#endCapture();
  }

  async #beginCapture() {
    this.#wake();
    const context = audioContext(); // inside the gesture, so audio may start
    this.#microphone ??= this.#createMicrophone(context);
    clearTimeout(this.#micRelease);
    try {
      await this.#microphone.open();
    } catch (error) {
      this.#setMode(Mode.OFF);
      const text = error instanceof MicrophoneError ? error.message : "The microphone could not be started.";
      this.#notices.show(text, { key: "microphone", sticky: true });
      return;
    }
    this.#notices.clear("microphone");
    if (this.#mode === Mode.OFF) {
      this.#releaseMicrophoneLater(); // released while the microphone was opening
      return;
    }
    this.#sendStart();
    this.#microphone.start();
  }

  async #endCapture() {
    const mode = this.#mode;
    this.#setMode(Mode.OFF);
    if (!this.#microphone?.isOpen) return;
    await this.#microphone.flush();
    if (this.#serverListening) this.#socket.send({ type: "stop" });
    this.#serverListening = false;
    if (mode === Mode.HANDS_FREE) this.#microphone.close();
    else this.#releaseMicrophoneLater();
  }

  #releaseMicrophoneLater() {
    clearTimeout(this.#micRelease);
    this.#micRelease = setTimeout(() => this.#mode === Mode.OFF && this.#microphone.close(), MIC_IDLE_RELEASE_MS);
  }

  #sendStart() {
    this.#serverListening = this.#socket.send({ type: "start", sample_rate: CAPTURE_RATE });
  }

  #createMicrophone(context) {
    const microphone = new Microphone({ context, workletUrl: this.#root.dataset.workletUrl, frameBytes: this.#frameBytes });
    microphone.addEventListener("frame", (event) => {
      if (this.#serverListening) this.#socket.sendAudio(event.detail);
    });
    microphone.addEventListener("level", (event) => this.#controls.setLevel(event.detail));
    microphone.addEventListener("ended", () => {
      this.#setMode(Mode.OFF);
      if (this.#serverListening) this.#socket.send({ type: "stop" });
      this.#serverListening = false;
      this.#notices.show("The microphone was disconnected.", { key: "microphone", kind: "warning" });
    });
    return microphone;
  }

  #setMode(mode) {
    this.#mode = mode;
    this.#render();
  }

  // -- commands --------------------------------------------------------------------------------

  #cancel() {
    const turnId = this.#reply ?? this.#speaking;
    const report = this.#player.stop(turnId);
    this.#socket.send({ type: "cancel" });
    if (turnId !== null) this.#report(turnId, report);
    this.#render();
  }

  #sendText(text) {
    this.#wake();
    audioContext(); // inside the gesture, so the reply may play
    this.#transcript.sending(text);
    if (this.#socket.isOpen) this.#socket.send({ type: "text", text });
    else this.#outbox.push(text);
    return true;
  }

  /** Reconnect if the server paused the session or refused it; the person is acting again. */
  #wake() {
    if (this.#socket.state === State.PAUSED || this.#socket.state === State.CLOSED) this.#socket.connect();
  }

  /** Tell the server how much of reply `turnId` was heard, once, and dim the rest on screen. */
  #report(turnId, report) {
    if (this.#reported.has(turnId)) return;
    this.#reported.add(turnId);
    this.#socket.send({ type: "playback", turn_id: turnId, seq: report.seq, played_s: report.played_s });
    this.#transcript.heard(turnId, heardText(this.#phrases.get(turnId) ?? [], report));
  }

  // -- server events ---------------------------------------------------------------------------

  #onMessage(message) {
    const turnId = message.turn_id;
    switch (message.type) {
      case "session":
        this.#onSession(message);
        break;
      case "info":
        this.#onInfo(message);
        break;
      case "speech_started":
        this.#utterance = turnId;
        this.#transcript.listening(turnId);
        break;
      case "partial_transcript":
        this.#transcript.partial(turnId, message.text);
        break;
      case "speech_stopped":
        if (this.#utterance === turnId) this.#utterance = null;
        if (message.reason === "cancelled") {
          this.#transcript.discard(turnId);
        } else {
          this.#transcribing = turnId;
          this.#transcript.transcribing(turnId);
        }
        break;
      case "final_transcript":
        this.#settled(turnId);
        this.#reply = turnId;
        this.#transcript.final(turnId, message.text, message.source);
        break;
      case "llm_token":
        this.#transcript.token(turnId, message.text);
        break;
      case "tts_chunk":
        this.#onAudio(message);
        break;
      case "tts_complete":
        this.#player.complete(turnId);
        break;
      case "interrupted":
        this.#report(turnId, this.#player.stop(turnId));
        break;
      case "metrics":
        this.#transcript.metrics(turnId, message);
        break;
      case "turn_complete":
        if (this.#reply === turnId) this.#reply = null;
        this.#player.complete(turnId);
        this.#transcript.complete(turnId, message.status);
        break;
      case "error":
        this.#onError(message);
        break;
    }
    this.#render();
  }

  #onSession(message) {
    const id = message.conversation_id;
    const url = new URL(location.href);
    if (url.searchParams.get("c") !== id) {
      url.searchParams.set("c", id);
      history.replaceState(history.state, "", url);
    }
    const link = this.#root.querySelector("[data-history-link]");
    link.href = `${this.#root.dataset.historyUrl}${id}/`;
    link.hidden = false;
    this.#showEngines(message.engines);
    this.#bargeIn = message.barge_in;
    const chunk = message.audio?.recommended_chunk_bytes;
    if (chunk && !this.#microphone) this.#frameBytes = frameSize(chunk, message.limits?.max_message_bytes);
    for (const key of [CONNECTION_NOTICE, ...RESOLVED_BY_RECONNECTING]) this.#notices.clear(key);
    if (this.#connectedOnce) {
      this.#notices.show("Reconnected. The conversation continues.", { key: CONNECTION_NOTICE, kind: "info" });
    }
    this.#connectedOnce = true;
    this.#restarting = false;
    this.#serverListening = false;
    if (this.#mode !== Mode.OFF && this.#microphone?.isOpen) this.#sendStart();
    for (const text of this.#outbox.splice(0)) this.#socket.send({ type: "text", text });
  }

  #showEngines(engines) {
    if (!engines) return;
    const offline = this.#root.querySelector("[data-offline]");
    offline.hidden = !engines.llm_offline;
    const parts = [
      ["Speech recognition", engines.asr],
      ["Replies", engines.llm],
      ["Voice", engines.tts],
    ].map(([name, engine]) => h("span", { class: "engine" }, `${name}: `, h("strong", {}, engine)));
    this.#root.querySelector("[data-engines]").replaceChildren(...parts);
  }

  /** The turn's words are known (or will never be): it is no longer being transcribed. */
  #settled(turnId) {
    if (this.#transcribing === turnId) this.#transcribing = null;
  }

  #onInfo(message) {
    if (message.message === "listening") return;
    if (message.turn_id) this.#settled(message.turn_id);
    if (message.turn_id && /no speech/i.test(message.message)) {
      this.#transcript.discard(message.turn_id);
      this.#notices.show("No speech was recognised. Try again, a little closer to the microphone.", {
        key: "no-speech",
        kind: "info",
      });
      return;
    }
    this.#notices.show(message.message, { key: SERVER_INFO, kind: "info" });
  }

  #onAudio(message) {
    const phrases = this.#phrases.get(message.turn_id) ?? [];
    phrases[message.seq] = { text: message.text, duration: message.duration_s };
    this.#phrases.set(message.turn_id, phrases);
    this.#player.enqueue(message.turn_id, message.seq, message.audio_b64);
  }

  #onError(message) {
    if (message.turn_id) this.#settled(message.turn_id);
    const text = plainError(message.code, message.message);
    const onTurn = message.turn_id ? this.#transcript.error(message.turn_id, text) : false;
    if (onTurn && message.recoverable) return;
    const options = { key: message.code, detail: message.message, sticky: !message.recoverable };
    if (message.code === "SHUTTING_DOWN") {
      // The reconnecting notice that follows says it in the same words; show one notice, not three.
      this.#restarting = true;
      this.#notices.clear(SERVER_INFO);
      Object.assign(options, { key: CONNECTION_NOTICE, kind: "info", detail: "" });
    } else if (message.code === "IDLE_TIMEOUT" || message.code === "SESSION_EXPIRED") {
      options.kind = "info";
    } else if (message.code === "UNAUTHORIZED") {
      options.action = { label: "New conversation", href: this.#root.dataset.chatUrl };
    } else if (message.code === "SESSION_LIMIT") {
      options.action = { label: "Reconnect", onClick: () => this.#socket.connect() };
    }
    this.#notices.show(text, options);
  }

  #onSocketState({ state, retryInS }) {
    const pill = this.#root.querySelector("[data-connection]");
    pill.dataset.state = state;
    pill.querySelector("[data-connection-text]").textContent = STATUS_PILL[state];
    if (state !== State.OPEN && state !== State.CONNECTING) this.#connectionLost();
    if (state === State.RECONNECTING) {
      const seconds = Math.max(1, Math.round(retryInS));
      const cause = this.#restarting ? "The server is restarting." : "The connection was lost.";
      this.#notices.show(`${cause} Reconnecting in ${seconds} s…`, {
        key: CONNECTION_NOTICE,
        kind: "warning",
        sticky: true,
        action: { label: "Retry now", onClick: () => this.#socket.connect() },
      });
      if (this.#socket.failures === SIGN_IN_CHECK_AFTER) this.#checkSignedIn();
    }
    this.#render();
  }

  /** The server finalizes and stores what was in flight; this page stops waiting for it. */
  #connectionLost() {
    this.#serverListening = false;
    if (this.#utterance) this.#transcript.discard(this.#utterance);
    this.#utterance = this.#transcribing = null;
    if (this.#reply) this.#transcript.complete(this.#reply, "cancelled");
    this.#reply = null;
    this.#player.completeAll();
  }

  async #checkSignedIn() {
    let response;
    try {
      response = await fetch(location.href, { method: "HEAD", redirect: "manual", cache: "no-store" });
    } catch {
      return; // the server is unreachable: keep retrying
    }
    if (response.type !== "opaqueredirect") return;
    this.#socket.close();
    const next = encodeURIComponent(location.pathname + location.search);
    this.#notices.show("You are signed out.", {
      key: CONNECTION_NOTICE,
      sticky: true,
      action: { label: "Sign in", href: `${this.#root.dataset.loginUrl}?next=${next}` },
    });
  }

  // -- playback --------------------------------------------------------------------------------

  #bindPlayer() {
    const player = this.#player;
    player.addEventListener("start", (event) => {
      this.#speaking = event.detail.turnId;
      this.#transcript.audio(event.detail.turnId, "playing");
      this.#render();
    });
    player.addEventListener("played", (event) => {
      this.#transcript.audio(event.detail.turnId, "playing", event.detail.playedS);
    });
    for (const type of ["finished", "stopped"]) {
      player.addEventListener(type, (event) => {
        const { turnId, playedS } = event.detail;
        if (this.#speaking === turnId) this.#speaking = null;
        this.#transcript.audio(turnId, type === "finished" ? "played" : "stopped", playedS);
        this.#render();
      });
    }
    player.addEventListener("decodeerror", (event) => {
      this.#transcript.error(event.detail.turnId, "Part of the reply could not be played.");
    });
  }

  // -- view ------------------------------------------------------------------------------------

  #render() {
    const inFlight = [this.#utterance, this.#transcribing, this.#reply].some((turnId) => turnId !== null);
    const canCancel = inFlight || this.#player.busy;
    this.#controls.render({ mode: this.#mode, canCancel, status: this.#statusLine() });
  }

  #statusLine() {
    const state = this.#socket.state;
    if (state === State.PAUSED) return "Paused to save resources. Talk or type to continue.";
    if (state === State.CLOSED) return "Not connected.";
    if (state !== State.OPEN) return "Waiting for the connection…";
    if (this.#mode === Mode.PUSH_TO_TALK) return "Recording. Release to send.";
    if (this.#mode === Mode.HANDS_FREE) {
      if (this.#utterance) return "Hearing you…";
      if (this.#transcribing) return "Transcribing…";
      if (this.#speaking) return this.#bargeIn ? "Speaking. Talk to interrupt." : "Speaking…";
      if (this.#reply) return "Thinking…";
      return "Listening. Just talk, and pause when you are done.";
    }
    if (this.#transcribing) return "Transcribing…";
    if (this.#speaking) return "Speaking…";
    if (this.#reply) return "Thinking…";
    return "Microphone off. Press the microphone, or hold Space to talk.";
  }
}

/** The PCM frame size in bytes: even, and within the server's message limit. */
function frameSize(chunkBytes, maxMessageBytes) {
  const limit = Number.isFinite(maxMessageBytes) && maxMessageBytes > 0 ? maxMessageBytes : chunkBytes;
  const size = Math.min(Number.isFinite(chunkBytes) && chunkBytes > 0 ? chunkBytes : 3200, limit);
  return size - (size % 2);
}

/** What the listener heard of a reply: as the server computes it from the same playback report. */
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

new ChatApp(document.getElementById("chat-app")).start();
