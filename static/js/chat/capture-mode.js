// The capture mode (off, hands-free, push-to-talk) and the microphone behind it. Frames stream to
// the server only while it listens, that is after it got `start` on the current connection: a new
// session knows nothing of the last one's, so every session begun while a mode is on gets `start`.
// A mode being on does not mean anything is heard: `capture` says what the microphone really does.
//
// Events: "change" when the mode or the capture state changes.

import { audioContext } from "./audio.js";
import { CAPTURE_RATE, Microphone, MicrophoneError } from "./capture.js";

export const Mode = Object.freeze({ OFF: "off", HANDS_FREE: "handsfree", PUSH_TO_TALK: "ptt" });

/** What the microphone really does, for the status line. */
export const Capture = Object.freeze({
  OFF: "off", // no mode is on
  UNAVAILABLE: "unavailable", // no mode is on: the last attempt to open the microphone failed
  STARTING: "starting", // a mode is on: the microphone is opening, or the server has not confirmed `start`
  DISCONNECTED: "disconnected", // a mode is on, but there is no connection: what is said now is not heard
  MUTED: "muted", // the server listens, but the system gives only silence (muted, or taken by another app)
  LIVE: "live", // the server confirmed `start` and the microphone's frames stream to it
});
const MIC_IDLE_RELEASE_MS = 30000; // push-to-talk keeps the microphone warm between presses
const NOTICE = "microphone";

export class CaptureMode extends EventTarget {
  #socket;
  #notices;
  #workletUrl;
  #onLevel;
  #frameBytes;
  #microphone = null;
  #micRelease = 0;
  #mode = Mode.OFF;
  #serverListening = false; // the current connection got our `start`
  #confirmed = false; // ... and answered it: it is listening
  #unavailable = false; // the last attempt to open the microphone failed

  /** `onLevel(0..1)` meters the microphone; `frameBytes` is the PCM frame size until setFrameSize(). */
  constructor({ socket, notices, workletUrl, frameBytes, onLevel }) {
    super();
    this.#socket = socket;
    this.#notices = notices;
    this.#workletUrl = workletUrl;
    this.#frameBytes = frameBytes;
    this.#onLevel = onLevel;
  }

  get mode() {
    return this.#mode;
  }

  /** What the microphone really does (a Capture value). */
  get capture() {
    if (this.#mode === Mode.OFF) return this.#unavailable ? Capture.UNAVAILABLE : Capture.OFF;
    if (!this.#socket.isOpen) return Capture.DISCONNECTED;
    if (!this.#microphone?.isOpen || !this.#confirmed) return Capture.STARTING;
    return this.#microphone.muted ? Capture.MUTED : Capture.LIVE;
  }

  /** The server's recommended frame size; it applies if the microphone was not opened yet. */
  setFrameSize(chunkBytes, maxMessageBytes) {
    if (!this.#microphone) this.#frameBytes = frameSize(chunkBytes, maxMessageBytes);
  }

  async toggleHandsFree() {
    if (this.#mode === Mode.HANDS_FREE) {
      await this.#end();
    } else if (this.#mode === Mode.OFF) {
      this.#setMode(Mode.HANDS_FREE);
      await this.#begin();
    }
  }

  pushStart() {
    if (this.#mode !== Mode.OFF) return;
    this.#setMode(Mode.PUSH_TO_TALK);
    this.#begin();
  }

  pushEnd() {
    if (this.#mode === Mode.PUSH_TO_TALK) this.#end();
  }

  /** A session began (the first, or after a reconnect): tell it to listen if a mode is on. */
  sessionStarted() {
    this.#serverListening = this.#confirmed = false;
    if (this.#mode !== Mode.OFF && this.#microphone?.isOpen) this.#sendStart();
  }

  /** The server answered `start` (its "listening" info): from now on what is said is heard. */
  serverListening() {
    if (!this.#serverListening || this.#confirmed) return;
    this.#confirmed = true;
    this.#changed();
  }

  /** The connection ended, or is ending: the server no longer listens. */
  connectionLost() {
    this.#serverListening = this.#confirmed = false;
  }

  /** Release the microphone and turn the mode off (the page is going away; if it comes back from
   * the back-forward cache, the person turns the microphone on again, as on any new page). */
  close() {
    this.#microphone?.close();
    this.#setMode(Mode.OFF);
  }

  async #begin() {
    const context = audioContext(); // inside the gesture, so audio may start
    this.#microphone ??= this.#createMicrophone(context);
    clearTimeout(this.#micRelease);
    this.#unavailable = false;
    try {
      await this.#microphone.open();
    } catch (error) {
      this.#unavailable = true;
      this.#setMode(Mode.OFF);
      const text = error instanceof MicrophoneError ? error.message : "The microphone could not be started.";
      this.#notices.show(text, { key: NOTICE, sticky: true });
      return;
    }
    this.#notices.clear(NOTICE);
    if (this.#mode === Mode.OFF) {
      this.#releaseLater(); // released while the microphone was opening
      return;
    }
    this.#sendStart();
    this.#microphone.start();
    this.#changed(); // open: now waiting for the server's answer
  }

  async #end() {
    const mode = this.#mode;
    this.#setMode(Mode.OFF);
    if (!this.#microphone?.isOpen) return;
    await this.#microphone.flush();
    this.#sendStop();
    if (mode === Mode.HANDS_FREE) this.#microphone.close();
    else this.#releaseLater();
  }

  #releaseLater() {
    clearTimeout(this.#micRelease);
    this.#micRelease = setTimeout(() => this.#mode === Mode.OFF && this.#microphone.close(), MIC_IDLE_RELEASE_MS);
  }

  #sendStart() {
    this.#serverListening = this.#socket.send({ type: "start", sample_rate: CAPTURE_RATE });
  }

  #sendStop() {
    if (this.#serverListening) this.#socket.send({ type: "stop" });
    this.#serverListening = this.#confirmed = false;
  }

  #createMicrophone(context) {
    const microphone = new Microphone({ context, workletUrl: this.#workletUrl, frameBytes: this.#frameBytes });
    microphone.addEventListener("frame", (event) => {
      if (this.#serverListening) this.#socket.sendAudio(event.detail);
    });
    microphone.addEventListener("level", (event) => this.#onLevel(event.detail));
    microphone.addEventListener("mute", () => this.#changed());
    microphone.addEventListener("ended", () => {
      this.#setMode(Mode.OFF);
      this.#sendStop();
      this.#notices.show("The microphone was disconnected.", { key: NOTICE, kind: "warning" });
    });
    return microphone;
  }

  #setMode(mode) {
    this.#mode = mode;
    this.#changed();
  }

  #changed() {
    this.dispatchEvent(new Event("change"));
  }
}

/** The PCM frame size in bytes: even, and within the server's message limit. */
export function frameSize(chunkBytes, maxMessageBytes) {
  const limit = Number.isFinite(maxMessageBytes) && maxMessageBytes > 0 ? maxMessageBytes : chunkBytes;
  const size = Math.min(Number.isFinite(chunkBytes) && chunkBytes > 0 ? chunkBytes : 3200, limit);
  return size - (size % 2);
}
