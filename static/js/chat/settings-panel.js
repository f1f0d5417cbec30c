// The conversation's settings (docs/protocol.md, "Session settings"): a small form that sends
// `configure` and shows what the server answers in `session_updated`. The server's bounds, from the
// `session` event, limit the controls; the server still checks every value.

const TURN_TAKING = { fixed: "After a fixed pause", adaptive: "When I sound finished" };
const LANGUAGE_NAMES = new Intl.DisplayNames([navigator.language || "en"], { type: "language" });

/** A language code as a person reads it: "de" → "German"; "auto" → "Detect it each time". */
function languageName(code) {
  if (code === "auto") return "Detect it each time";
  try {
    return LANGUAGE_NAMES.of(code) ?? code;
  } catch {
    return code; // a code Intl does not know
  }
}

export class SettingsPanel {
  #form;
  #fields;
  #send;
  #applied = null;

  /** `send(settings)` sends a configure message; false when disconnected. */
  constructor(form, send) {
    this.#form = form;
    this.#send = send;
    const field = (name) => form.querySelector(`[name="${name}"]`);
    this.#fields = {
      silence_ms: field("silence_ms"),
      barge_in: field("barge_in"),
      turn_detection: field("turn_detection"),
      language: field("language"),
      voice: field("voice"),
      system_prompt: field("system_prompt"),
    };
    this.#fields.silence_ms.addEventListener("input", () => this.#showSilence());
    form.addEventListener("input", () => this.#markChanged());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#apply();
    });
    form.addEventListener("reset", (event) => {
      event.preventDefault();
      if (this.#applied) this.show(this.#applied);
    });
  }

  /** Take the server's settings (and, from `session`, its bounds) into the form. */
  show(settings, limits = null) {
    if (!settings) return;
    if (limits) this.#limit(limits);
    this.#applied = settings;
    const { silence_ms, barge_in, turn_detection, language, voice, system_prompt } = this.#fields;
    silence_ms.value = settings.silence_ms;
    barge_in.checked = settings.barge_in;
    turn_detection.value = settings.turn_detection;
    language.value = settings.language;
    voice.value = settings.voice;
    system_prompt.value = settings.system_prompt;
    this.#showSilence();
    this.#form.querySelector("fieldset").disabled = false;
    this.#markChanged();
  }

  #limit(limits) {
    const { silence_ms, turn_detection, language, voice, system_prompt } = this.#fields;
    silence_ms.min = limits.silence_ms.min;
    silence_ms.max = limits.silence_ms.max;
    system_prompt.maxLength = limits.system_prompt.max_chars;
    turn_detection.replaceChildren(
      ...limits.turn_detection.choices.map((mode) => new Option(TURN_TAKING[mode] ?? mode, mode)),
    );
    const languages = limits.language.choices.map((code) => new Option(languageName(code), code));
    languages.sort((a, b) => (a.value === "auto" ? -1 : b.value === "auto" ? 1 : a.text.localeCompare(b.text)));
    language.replaceChildren(...languages);
    language.disabled = languages.length < 2; // an English-only speech model
    const voices = limits.voice.choices.map((id) => new Option(limits.voice.labels[id] ?? id, id));
    voice.replaceChildren(...voices);
    voice.disabled = voice.options.length < 2;
  }

  /** The server refused the change being saved (BAD_SETTING, MESSAGES_TOO_FAST): nothing changed,
   * and the form keeps what the person chose, to correct it or send it again. */
  refused() {
    if (this.#form.dataset.state === "saving") this.#markChanged();
  }

  /** Only what differs from the settings in effect is sent. */
  #changes() {
    const applied = this.#applied ?? {};
    const { silence_ms, barge_in, turn_detection, language, voice, system_prompt } = this.#fields;
    const wanted = {
      silence_ms: Number(silence_ms.value),
      barge_in: barge_in.checked,
      turn_detection: turn_detection.value,
      language: language.value,
      voice: voice.value,
      system_prompt: system_prompt.value.trim(),
    };
    return Object.fromEntries(Object.entries(wanted).filter(([name, value]) => value !== applied[name]));
  }

  #apply() {
    const changes = this.#changes();
    if (Object.keys(changes).length && this.#send(changes)) this.#form.dataset.state = "saving";
  }

  #markChanged() {
    const changed = Object.keys(this.#changes()).length > 0;
    this.#form.dataset.state = changed ? "changed" : "saved";
    this.#form.querySelector("[data-settings-save]").disabled = !changed;
  }

  #showSilence() {
    const value = Number(this.#fields.silence_ms.value);
    this.#form.querySelector("[data-silence-value]").textContent = `${(value / 1000).toFixed(1)} s`;
  }
}
