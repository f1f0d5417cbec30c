// The capture mode (off, hands-free, push-to-talk) and the microphone behind it. Frames stream to
// the server only while it listens, that is after it got `start` on the current connection: a new
// session knows nothing of the last one's, so every session begun while a mode is on gets `start`.
//
// Events: "change" when the mode changes.

import { audioContext } from "./audio.js";
import { CAPTURE_RATE, Microphone, MicrophoneError } from "./capture.js";

export const Mode = Object.freeze({ OFF: "off", HANDS_FREE: "handsfree", PUSH_TO_TALK: "ptt" });
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
    this.#serverListening = false;
    if (this.#mode !== Mode.OFF && this.#microphone?.isOpen) this.#sendStart();
  }

  /** The connection ended, or is ending: the server no longer listens. */
  connectionLost() {
    this.#serverListening = false;
  }

  /** Release the microphone (the page is going away). */
  close() {
    this.#microphone?.close();
  }

  async #begin() {
    const context = audioContext(); // inside the gesture, so audio may start
    this.#microphone ??= this.#createMicrophone(context);
    clearTimeout(this.#micRelease);
    try {
      await this.#microphone.open();
    } catch (error) {
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
    this.#serverListening = false;
  }

  #createMicrophone(context) {
    const microphone = new Microphone({ context, workletUrl: this.#workletUrl, frameBytes: this.#frameBytes });
    microphone.addEventListener("frame", (event) => {
      if (this.#serverListening) this.#socket.sendAudio(event.detail);
    });
    microphone.addEventListener("level", (event) => this.#onLevel(event.detail));
    microphone.addEventListener("ended", () => {
      this.#setMode(Mode.OFF);
      this.#sendStop();
      this.#notices.show("The microphone was disconnected.", { key: NOTICE, kind: "warning" });
    });
    return microphone;
  }

  #setMode(mode) {
    this.#mode = mode;
    this.dispatchEvent(new Event("change"));
  }
}

/** The PCM frame size in bytes: even, and within the server's message limit. */
export function frameSize(chunkBytes, maxMessageBytes) {
  const limit = Number.isFinite(maxMessageBytes) && maxMessageBytes > 0 ? maxMessageBytes : chunkBytes;
  const size = Math.min(Number.isFinite(chunkBytes) && chunkBytes > 0 ? chunkBytes : 3200, limit);
  return size - (size % 2);
}
