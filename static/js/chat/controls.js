// The composer's controls: hands-free toggle, push-to-talk (hold the button or the space bar), cancel
// (also Escape), the text box, the reply volume and the microphone level meter. It only wires input
// to the app's handlers and shows the state it is given.

const VOLUME_KEY = "parley.volume";
const METER_BARS = 12;
const METER_ARIA_EVERY_MS = 500;
const NOT_FOR_SPACE = "input, textarea, select, button, a[href], summary, [contenteditable]";

export class Controls {
  #handlers;
  #mic;
  #ptt;
  #cancel;
  #text;
  #send;
  #status;
  #meter;
  #bars;
  #held = null; // what holds push-to-talk down: "pointer", "key" or null
  #level = 0;
  #shownLevel = 0;
  #frame = 0;
  #ariaAt = 0;

  /** handlers: onHandsFree(), onPushStart(), onPushEnd(), onCancel(), onText(text) → bool, onVolume(0..1). */
  constructor(root, handlers) {
    this.#handlers = handlers;
    this.#mic = root.querySelector("[data-mic]");
    this.#ptt = root.querySelector("[data-ptt]");
    this.#cancel = root.querySelector("[data-cancel]");
    this.#text = root.querySelector("[data-text]");
    this.#send = root.querySelector("[data-send]");
    this.#status = root.querySelector("[data-capture-status]");
    this.#meter = root.querySelector("[data-level]");
    this.#bars = Array.from({ length: METER_BARS }, () => document.createElement("i"));
    this.#meter.replaceChildren(...this.#bars);

    this.#mic.addEventListener("click", () => handlers.onHandsFree());
    this.#cancel.addEventListener("click", () => handlers.onCancel());
    this.#bindPushToTalk();
    this.#bindComposer(root.querySelector("[data-composer]"));
    this.#bindVolume(root.querySelector("[data-volume]"));
  }

  /**
   * Show the app's state: mode ("off", "handsfree", "ptt"), what the microphone really does (`capture`,
   * a capture-mode.js Capture: the recording dot shows only while it is "live"), whether cancel
   * applies, the status line.
   */
  render({ mode, capture, canCancel, status }) {
    const live = mode === "handsfree";
    this.#mic.setAttribute("aria-pressed", String(live));
    this.#mic.classList.toggle("is-live", live);
    this.#mic.title = live ? "Stop hands-free talking" : "Talk hands-free: just speak, pause to send";
    this.#ptt.disabled = live;
    this.#ptt.classList.toggle("is-held", mode === "ptt");
    this.#cancel.disabled = !canCancel;
    this.#status.textContent = status;
    this.#status.dataset.mode = mode;
    this.#status.dataset.capture = capture;
  }

  /** The microphone level, 0..1; drawn on the next animation frame. */
  setLevel(level) {
    this.#level = level;
    this.#frame ||= requestAnimationFrame(() => this.#drawLevel());
  }

  #drawLevel() {
    this.#frame = 0;
    // Rise at once, fall gently, as a VU meter does.
    this.#shownLevel = Math.max(this.#level, this.#shownLevel * 0.8);
    const lit = Math.round(this.#shownLevel * METER_BARS);
    this.#bars.forEach((bar, index) => bar.classList.toggle("on", index < lit));
    const now = performance.now();
    if (now - this.#ariaAt > METER_ARIA_EVERY_MS) {
      this.#ariaAt = now;
      this.#meter.setAttribute("aria-valuenow", String(Math.round(this.#shownLevel * 100)));
    }
    if (this.#shownLevel > 0.01) this.#frame = requestAnimationFrame(() => this.#drawLevel());
  }

  #bindPushToTalk() {
    const press = (by) => {
      if (this.#held || this.#ptt.disabled) return;
      this.#held = by;
      this.#handlers.onPushStart();
    };
    const release = (by) => {
      if (this.#held !== by) return;
      this.#held = null;
      this.#handlers.onPushEnd();
    };
    this.#ptt.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      event.preventDefault();
      this.#ptt.setPointerCapture(event.pointerId);
      press("pointer");
    });
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      this.#ptt.addEventListener(type, () => release("pointer"));
    }
    this.#ptt.addEventListener("contextmenu", (event) => event.preventDefault());

    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.#cancel.disabled) {
        this.#handlers.onCancel();
        return;
      }
      if (!this.#talkKey(event)) return;
      event.preventDefault();
      if (!event.repeat) press("key");
    });
    document.addEventListener("keyup", (event) => {
      if (this.#held === "key" && (event.code === "Space" || event.key === "Enter")) {
        event.preventDefault();
        release("key");
      }
    });
    // A key released while the window is in the background never sends keyup.
    window.addEventListener("blur", () => this.#held && release(this.#held));
  }

  /** Space anywhere but in a field or on another control, or Space/Enter on the talk button itself. */
  #talkKey(event) {
    if (event.ctrlKey || event.altKey || event.metaKey) return false;
    if (event.target === this.#ptt) return event.code === "Space" || event.key === "Enter";
    return event.code === "Space" && !(event.target instanceof Element && event.target.closest(NOT_FOR_SPACE));
  }

  #bindComposer(form) {
    const sync = () => {
      this.#send.disabled = this.#text.value.trim() === "";
    };
    this.#text.addEventListener("input", sync);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = this.#text.value.trim();
      if (text && this.#handlers.onText(text)) this.#text.value = "";
      sync();
    });
    sync();
  }

  #bindVolume(slider) {
    const stored = Number.parseFloat(localStorage.getItem(VOLUME_KEY) ?? "");
    if (Number.isFinite(stored)) slider.value = String(Math.round(stored * 100));
    const apply = () => {
      const volume = Number(slider.value) / 100;
      slider.setAttribute("aria-valuetext", `${slider.value}%`);
      localStorage.setItem(VOLUME_KEY, String(volume));
      this.#handlers.onVolume(volume);
    };
    slider.addEventListener("input", apply);
    apply();
  }
}
