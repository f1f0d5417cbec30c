// The voice chat page: connects the socket, the microphone, the player and the views, and turns
// server events into what the person sees and hears (turn-state.js follows where each turn is).
// Protocol: docs/protocol.md.

import { audioContext } from "./audio.js";
import { CaptureMode, frameSize, Mode } from "./capture-mode.js";
import { CONNECTION_NOTICE, ConnectionView } from "./connection-view.js";
import { Controls } from "./controls.js";
import { h } from "./dom.js";
import { leaveHandover, takeHandover } from "./handover.js";
import { HeardReplies } from "./heard.js";
import { Notices, plainError } from "./notices.js";
import { Outbox } from "./outbox.js";
import { Player } from "./playback.js";
import { TurnRecovery } from "./recovery.js";
import { SettingsPanel } from "./settings-panel.js";
import { State, VoiceSocket } from "./socket.js";
import { statusLine } from "./status-line.js";
import { Transcript } from "./transcript.js";
import { Phase, TurnStates } from "./turn-state.js";

const SIGN_IN_CHECK_AFTER = 2; // failed connection attempts before asking whether we are signed out
const SERVER_INFO = "server-info";
const RESOLVED_BY_RECONNECTING = ["IDLE_TIMEOUT", "SESSION_EXPIRED", "SESSION_LIMIT", "STORAGE_UNAVAILABLE"];
const CONVERSATION_GONE = 4404; // close code: deleted, or not this user's
const TOUCH = window.matchMedia("(pointer: coarse)"); // a phone or tablet: tap, no space bar

class ChatApp {
  #root;
  #socket;
  #transcript;
  #notices;
  #connection;
  #outbox;
  #recovery;
  #player;
  #controls;
  #capture;
  #settings;
  #turns = new TurnStates();
  #heard = new HeardReplies();
  #bargeIn;
  #engines = null;
  #connectedOnce = false;
  #restarting = false; // the server said it is shutting down: the coming disconnect is a restart
  #gone = false; // the conversation was deleted, or is not this user's (4404): never resume it

  constructor(root) {
    const data = root.dataset;
    this.#root = root;
    this.#bargeIn = data.bargeIn === "true";
    this.#socket = new VoiceSocket(data.wsPath, { conversationId: data.conversationId, healthUrl: data.healthUrl });
    this.#transcript = new Transcript({
      list: root.querySelector("[data-log]"),
      scroller: root.querySelector("[data-scroller]"),
      empty: root.querySelector("[data-empty]"),
    });
    this.#notices = new Notices(root.querySelector("[data-notices]"));
    this.#connection = new ConnectionView(root.querySelector("[data-connection]"), this.#notices, () =>
      this.#socket.connect(),
    );
    this.#outbox = new Outbox(this.#transcript, (text) => this.#socket.send({ type: "text", text }));
    this.#recovery = new TurnRecovery(this.#transcript, () => {
      const id = this.#socket.conversationId;
      return id ? `${data.historyUrl}${id}/turns.json` : "";
    });
    this.#player = new Player(audioContext);
    this.#capture = new CaptureMode({
      socket: this.#socket,
      notices: this.#notices,
      workletUrl: data.workletUrl,
      frameBytes: frameSize(Number(data.pcmChunkSize), Number(data.maxMessageBytes)),
      onLevel: (level) => this.#controls.setLevel(level),
    });
    this.#capture.addEventListener("change", () => this.#render());
    this.#controls = new Controls(root, {
      onHandsFree: () => {
        if (this.#capture.mode === Mode.OFF) this.#wake();
        this.#capture.toggleHandsFree();
      },
      onPushStart: () => {
        this.#wake();
        this.#capture.pushStart();
      },
      onPushEnd: () => this.#capture.pushEnd(),
      onCancel: () => this.#cancel(),
      onText: (text) => this.#sendText(text),
      onVolume: (volume) => {
        this.#player.volume = volume;
      },
    });
    this.#settings = new SettingsPanel(root.querySelector("[data-settings]"), (settings) =>
      this.#socket.send({ type: "configure", settings }),
    );
    this.#socket.addEventListener("message", (event) => this.#onMessage(event.detail));
    this.#socket.addEventListener("state", (event) => this.#onSocketState(event.detail));
    this.#bindPlayer();
    TOUCH.addEventListener("change", () => this.#render());
    window.addEventListener("pagehide", () => {
      const turns = this.#transcript.unsettledTurns();
      leaveHandover(this.#socket.conversationId, { turns, texts: this.#outbox.unsent() });
      this.#socket.close();
      this.#capture.close();
    });
    window.addEventListener("pageshow", (event) => {
      if (!event.persisted) return;
      // Back to this page from the back-forward cache: it carries on itself, with a new connection.
      takeHandover(this.#socket.conversationId);
      if (!this.#gone) this.#socket.connect();
    });
  }

  start() {
    // A reload renders the turns stored so far; the previous page's session may still be finishing
    // some, and may store the utterance it was hearing only now.
    const handover = takeHandover(this.#socket.conversationId);
    for (const { turnId, userText } of handover.turns) this.#transcript.placeholder(turnId, userText);
    this.#settleUnsettledTurns();
    for (const text of handover.texts) this.#outbox.submit(text);
    this.#socket.connect();
    this.#render();
  }

  // -- commands --------------------------------------------------------------------------------

  #cancel() {
    const turnId = this.#turns.current(Phase.REPLYING) ?? this.#turns.playing;
    const report = this.#player.stop(turnId);
    this.#socket.send({ type: "cancel" });
    if (turnId !== null) this.#report(turnId, report);
    this.#render();
  }

  #sendText(text) {
    this.#wake();
    audioContext(); // inside the gesture, so the reply may play
    this.#outbox.submit(text);
    return true;
  }

  /** Reconnect if the server paused the session or refused it; the person is acting again. A
   * conversation that is gone is not resumed: under its id the server would begin a new one. */
  #wake() {
    const state = this.#socket.state;
    if (state === State.PAUSED || (state === State.CLOSED && !this.#gone)) this.#socket.connect();
  }

  /** Tell the server how much of reply `turnId` was heard, once, and dim the rest on screen. */
  #report(turnId, report) {
    const heard = this.#heard.report(turnId, report);
    if (!heard) return;
    this.#socket.send(heard.command);
    this.#transcript.heard(turnId, heard.text);
  }

  // -- server events ---------------------------------------------------------------------------

  #onMessage(message) {
    const turnId = message.turn_id;
    this.#turns.apply(message);
    switch (message.type) {
      case "session":
        this.#onSession(message);
        break;
      case "session_updated":
        this.#showEngines({ ...this.#engines, ...message.engines });
        this.#settings.show(message.settings);
        this.#bargeIn = message.settings.barge_in;
        this.#notices.show("Settings applied from your next turn.", { key: "settings", kind: "info" });
        break;
      case "info":
        this.#onInfo(message);
        break;
      case "speech_started":
        this.#transcript.listening(turnId);
        break;
      case "partial_transcript":
        this.#transcript.partial(turnId, message.text);
        break;
      case "speech_stopped":
        if (this.#turns.phaseOf(turnId) === Phase.TRANSCRIBING) this.#transcript.transcribing(turnId);
        else this.#transcript.discard(turnId); // cancelled, or too short to be a turn
        break;
      case "final_transcript":
        if (message.source === "text") this.#outbox.confirm(turnId);
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
        this.#player.complete(turnId);
        this.#transcript.complete(turnId, message.status);
        this.#outbox.turnEnded(turnId);
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
    this.#settings.show(message.settings, message.settings_limits);
    const chunk = message.audio?.recommended_chunk_bytes;
    if (chunk) this.#capture.setFrameSize(chunk, message.limits?.max_message_bytes);
    this.#outbox.setLimits(message.limits);
    for (const key of [CONNECTION_NOTICE, ...RESOLVED_BY_RECONNECTING]) this.#notices.clear(key);
    if (this.#connectedOnce) {
      this.#notices.show("Reconnected. The conversation continues.", { key: CONNECTION_NOTICE, kind: "info" });
    }
    this.#connectedOnce = true;
    this.#restarting = false;
    this.#capture.sessionStarted();
    this.#recovery.check(); // the turns the last connection left in flight
    this.#outbox.resume(this.#recovery);
  }

  /** The engines in words for the person: no library or model names (the voice is the TTS engine's own). */
  #showEngines(engines) {
    if (!engines) return;
    this.#engines = engines;
    const offline = this.#root.querySelector("[data-offline]");
    offline.hidden = !engines.llm_offline;
    const parts = [
      ["Speech recognition", "on this server"],
      ["Replies", engines.llm_offline ? "simple built-in assistant" : "language model"],
      ["Voice", engines.voice ?? engines.tts],
    ].map(([name, engine]) => h("span", { class: "engine" }, `${name}: `, h("strong", {}, engine)));
    this.#root.querySelector("[data-engines]").replaceChildren(...parts);
  }

  #onInfo(message) {
    if (message.message === "listening") {
      this.#capture.serverListening();
      return;
    }
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
    this.#heard.phrase(message);
    this.#player.enqueue(message.turn_id, message.seq, message.audio_b64);
  }

  #onError(message) {
    const text = plainError(message.code, message.message);
    const onTurn = message.turn_id ? this.#transcript.error(message.turn_id, text) : false;
    if (onTurn && message.recoverable) return;
    const detail = message.message === text ? "" : message.message;
    const options = { key: message.code, detail, sticky: !message.recoverable };
    if (message.code === "BAD_SETTING" || message.code === "MESSAGES_TOO_FAST") this.#settings.refused();
    if (message.code === "SHUTTING_DOWN") {
      // The server takes nothing more on this connection: what is typed now waits for the next one.
      this.#capture.connectionLost();
      this.#outbox.connectionLost();
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

  #onSocketState({ state, retryAt, code }) {
    if (state === State.CLOSED && code === CONVERSATION_GONE) this.#gone = true;
    const cause = this.#restarting ? "The server is restarting." : "The connection was lost.";
    this.#connection.render(state, { retryAt, cause });
    if (state !== State.OPEN && state !== State.CONNECTING) this.#connectionLost();
    if (state === State.RECONNECTING && this.#socket.failures === SIGN_IN_CHECK_AFTER) this.#checkSignedIn();
    // Hands-free, the person is talking to the page, not idle: the session reached its time limit,
    // and the next one begins at once rather than at a click the person has no reason to make.
    if (state === State.PAUSED && this.#capture.mode === Mode.HANDS_FREE) this.#socket.connect();
    this.#render();
  }

  /** The server finalizes and stores what was in flight; this page learns how it ended from storage. */
  #connectionLost() {
    this.#capture.connectionLost();
    this.#turns.connectionLost();
    this.#player.completeAll();
    this.#outbox.connectionLost();
    this.#settleUnsettledTurns();
  }

  /** Ask the server how the turns shown without an outcome ended (see recovery.js). */
  #settleUnsettledTurns() {
    this.#recovery.track(this.#transcript.unsettledTurns().map((turn) => turn.turnId));
    this.#recovery.check();
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
      this.#turns.playStarted(event.detail.turnId);
      this.#transcript.audio(event.detail.turnId, "playing");
      this.#render();
    });
    player.addEventListener("played", (event) => {
      this.#transcript.audio(event.detail.turnId, "playing", event.detail.playedS);
    });
    for (const type of ["finished", "stopped"]) {
      player.addEventListener(type, (event) => {
        const { turnId, playedS } = event.detail;
        this.#turns.playEnded(turnId);
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
    const canCancel = this.#turns.inFlight || this.#player.busy;
    const capture = this.#capture.capture;
    const status = statusLine({
      connection: this.#socket.state,
      mode: this.#capture.mode,
      capture,
      turns: this.#turns,
      bargeIn: this.#bargeIn,
      touch: TOUCH.matches,
    });
    this.#controls.render({ mode: this.#capture.mode, capture, canCancel, status });
  }
}

new ChatApp(document.getElementById("chat-app")).start();
