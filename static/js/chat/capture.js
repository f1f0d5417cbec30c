// The microphone: getUserMedia with echo cancellation, noise suppression and auto gain (so the
// assistant's voice from the speakers does not barge in on itself), feeding the PCM worklet.
// Dispatches "frame" (detail: ArrayBuffer of 16 kHz PCM16), "level" (detail: 0..1), "ended"
// (the device went away) and "mute" (the system muted or unmuted the device: see `muted`).

export const CAPTURE_RATE = 16000;
const FLUSH_TIMEOUT_MS = 500;
const LEVEL_FLOOR_DB = -60;

/** A microphone problem, with a message a person can act on. */
export class MicrophoneError extends Error {}

const loadedWorklets = new WeakSet();

export class Microphone extends EventTarget {
  #context;
  #workletUrl;
  #frameBytes;
  #stream = null;
  #source = null;
  #node = null;
  #opening = null;
  #flushed = null;

  constructor({ context, workletUrl, frameBytes }) {
    super();
    this.#context = context;
    this.#workletUrl = workletUrl;
    this.#frameBytes = frameBytes;
  }

  get isOpen() {
    return this.#node !== null;
  }

  /** The device is open but the system gives only silence (muted in the OS, or taken by another app). */
  get muted() {
    return this.#stream?.getAudioTracks().some((track) => track.muted) ?? false;
  }

  /** Ask for the microphone and start metering; frames flow only after start(). Idempotent. */
  open() {
    if (this.#node) return Promise.resolve();
    this.#opening ??= this.#open().finally(() => {
      this.#opening = null;
    });
    return this.#opening;
  }

  async #open() {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new MicrophoneError("The microphone needs a secure page: open the site over HTTPS or on localhost.");
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (error) {
      throw new MicrophoneError(describeFailure(error));
    }
    let node;
    try {
      node = await this.#createNode();
    } catch {
      for (const track of stream.getTracks()) track.stop();
      throw new MicrophoneError("The audio processor could not be loaded. Reload the page and try again.");
    }
    const source = this.#context.createMediaStreamSource(stream);
    source.connect(node);
    for (const track of stream.getAudioTracks()) {
      track.addEventListener("ended", () => {
        this.close();
        this.dispatchEvent(new Event("ended"));
      });
      for (const type of ["mute", "unmute"]) track.addEventListener(type, () => this.dispatchEvent(new Event("mute")));
    }
    this.#stream = stream;
    this.#source = source;
    this.#node = node;
  }

  async #createNode() {
    const context = this.#context;
    if (!loadedWorklets.has(context)) {
      await context.audioWorklet.addModule(this.#workletUrl);
      loadedWorklets.add(context);
    }
    const node = new AudioWorkletNode(context, "pcm-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      processorOptions: { targetRate: CAPTURE_RATE, frameBytes: this.#frameBytes },
    });
    node.port.onmessage = (event) => this.#onWorkletMessage(event.data);
    return node;
  }

  /** Begin producing PCM frames. */
  start() {
    this.#node?.port.postMessage({ type: "start" });
  }

  /** Stop producing frames; resolves once the last, partial frame has been dispatched. */
  flush() {
    if (!this.#node) return Promise.resolve();
    const done = new Promise((resolve) => {
      this.#flushed = resolve;
      setTimeout(resolve, FLUSH_TIMEOUT_MS);
    });
    this.#node.port.postMessage({ type: "flush" });
    return done;
  }

  /** Release the device (the browser's recording indicator goes off). */
  close() {
    this.#source?.disconnect();
    if (this.#node) this.#node.port.onmessage = null;
    for (const track of this.#stream?.getTracks() ?? []) track.stop();
    this.#stream = this.#source = this.#node = null;
    this.dispatchEvent(new CustomEvent("level", { detail: 0 }));
  }

  #onWorkletMessage(message) {
    if (message.type === "level") {
      const db = 20 * Math.log10(Math.max(message.rms, 1e-6));
      const level = Math.min(1, Math.max(0, (db - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB));
      this.dispatchEvent(new CustomEvent("level", { detail: level }));
      return;
    }
    if (message.buffer.byteLength > 0) this.dispatchEvent(new CustomEvent("frame", { detail: message.buffer }));
    if (message.last && this.#flushed) {
      this.#flushed();
      this.#flushed = null;
    }
  }
}

function describeFailure(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Microphone access is blocked. Allow it in the browser's site settings, or type instead.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one, or type instead.";
    case "NotReadableError":
    case "AbortError":
      return "The microphone is busy or unavailable. Close other apps using it and try again.";
    default:
      return "The microphone could not be opened. You can still type.";
  }
}
