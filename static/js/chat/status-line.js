// The line under the controls that says what the page is doing: connection first, then the
// microphone as it really is (capture-mode.js `Capture`), then the turn furthest from done.

import { Capture, Mode } from "./capture-mode.js";
import { State } from "./socket.js";
import { Phase } from "./turn-state.js";

/** How to start talking: on a touch screen there is no space bar to hold. */
export function talkHint(touch) {
  return touch
    ? "Microphone off. Tap the microphone, or touch and hold “Hold to talk”."
    : "Microphone off. Press the microphone, or hold Space to talk.";
}

/**
 * The status for socket state `connection`, capture mode `mode`, what the microphone really does
 * (`capture`), the TurnStates `turns`; `touch` when the page is used by touch.
 */
export function statusLine({ connection, mode, capture, turns, bargeIn, touch = false }) {
  if (connection === State.PAUSED) return "Paused to save resources. Talk or type to continue.";
  const micOn = mode !== Mode.OFF;
  if (connection !== State.OPEN) {
    if (micOn) return "Microphone on, but not connected: what you say now is not heard.";
    return connection === State.CLOSED ? "Not connected." : "Waiting for the connection…";
  }
  if (capture === Capture.STARTING) return "Starting the microphone…";
  if (capture === Capture.MUTED) return "The microphone is muted by the system or another app: nothing is heard.";
  if (mode === Mode.PUSH_TO_TALK) return "Recording. Release to send.";
  if (mode === Mode.HANDS_FREE) {
    if (turns.current(Phase.HEARING)) return "Hearing you…";
    if (turns.current(Phase.TRANSCRIBING)) return "Transcribing…";
    if (turns.playing) return bargeIn ? "Speaking. Talk to interrupt." : "Speaking…";
    if (turns.current(Phase.REPLYING)) return "Thinking…";
    return "Listening. Just talk, and pause when you are done.";
  }
  if (turns.current(Phase.TRANSCRIBING)) return "Transcribing…";
  if (turns.playing) return "Speaking…";
  if (turns.current(Phase.REPLYING)) return "Thinking…";
  if (capture === Capture.UNAVAILABLE) return "Microphone unavailable. You can type instead.";
  return talkHint(touch);
}
