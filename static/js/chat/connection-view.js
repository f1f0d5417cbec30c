// What the person sees of the connection: the header pill and, while the connection is lost, a
// notice that says why, counts down to the next attempt second by second, says when an attempt is
// under way, and offers to retry at once.

import { State } from "./socket.js";

export const CONNECTION_NOTICE = "connection";

const PILL_TEXT = {
  [State.CONNECTING]: "Connecting…",
  [State.OPEN]: "Connected",
  [State.RECONNECTING]: "Reconnecting…",
  [State.PAUSED]: "Paused",
  [State.CLOSED]: "Disconnected",
};
const TICK_MS = 250;

export class ConnectionView {
  #pill;
  #notices;
  #onRetry;
  #timer = 0;
  #lost = false; // the connection dropped and has not come back yet

  /** `onRetry()` reconnects now ("Retry now"). */
  constructor(pill, notices, onRetry) {
    this.#pill = pill;
    this.#notices = notices;
    this.#onRetry = onRetry;
  }

  /** Show socket state `state`; `retryAt` is when the next attempt starts, `cause` why it was lost. */
  render(state, { retryAt = 0, cause = "" } = {}) {
    this.#pill.dataset.state = state;
    this.#pill.querySelector("[data-connection-text]").textContent = PILL_TEXT[state];
    clearInterval(this.#timer);
    if (state === State.RECONNECTING) {
      this.#lost = true;
      this.#countDown(cause, retryAt);
    } else if (state === State.CONNECTING && this.#lost) {
      this.#notices.update(CONNECTION_NOTICE, `${cause} Reconnecting…`);
    } else if (state !== State.CONNECTING) {
      this.#lost = false;
    }
  }

  #countDown(cause, retryAt) {
    const text = () => `${cause} Reconnecting in ${Math.max(1, Math.ceil((retryAt - Date.now()) / 1000))} s…`;
    this.#notices.show(text(), {
      key: CONNECTION_NOTICE,
      kind: "warning",
      sticky: true,
      action: { label: "Retry now", onClick: this.#onRetry },
    });
    this.#timer = setInterval(() => this.#notices.update(CONNECTION_NOTICE, text()), TICK_MS);
  }
}
