// Watches /health while the chat waits to reconnect, so that a server coming back from a restart is
// noticed within a poll interval instead of after the socket's backoff delay. A refused connection
// fails at once, so polling a server that is down costs it nothing; polling stops as soon as the
// server answers.
//
// "Answers" means our server replied, a 503 included (the process is up, only a component is not
// ready yet); no reply, or someone else's (a proxy's 502 page), means it is not back.

const POLL_MS = 500;
const JITTER_MS = 200; // spreads the reconnections of many pages after a restart
const TIMEOUT_MS = 2000;

export class ServerProbe {
  #url;
  #onBack;
  #timer = 0;
  #running = false;
  #unreachable = false; // a poll of this watch found no server

  /** `onBack()` is called when the server answers after a poll found it unreachable. */
  constructor(url, onBack) {
    this.#url = url;
    this.#onBack = onBack;
  }

  /** Poll until the server answers (or stop()); calling it again while polling changes nothing. */
  start() {
    if (this.#running || !this.#url) return;
    this.#running = true;
    this.#unreachable = false;
    this.#poll();
  }

  stop() {
    this.#running = false;
    clearTimeout(this.#timer);
  }

  async #poll() {
    const answering = await this.#answers();
    if (!this.#running) return;
    if (answering) {
      this.#running = false;
      if (this.#unreachable) this.#onBack();
      return;
    }
    this.#unreachable = true;
    this.#timer = setTimeout(() => this.#poll(), POLL_MS + Math.random() * JITTER_MS);
  }

  async #answers() {
    try {
      const response = await fetch(this.#url, { cache: "no-store", signal: AbortSignal.timeout(TIMEOUT_MS) });
      const report = await response.json();
      return typeof report?.status === "string";
    } catch {
      return false;
    }
  }
}
