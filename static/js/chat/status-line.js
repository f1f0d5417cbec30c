// The line under the controls that says what the page is doing: connection first, then the
// microphone, then the turn furthest from done.

import { Mode } from "./capture-mode.js";
import { State } from "./socket.js";
import { Phase } from "./turn-state.js";

/** The status for socket state `connection`, capture mode `mode` and the TurnStates `turns`. */
export function statusLine({ connection, mode, turns, bargeIn }) {
  if (connection === State.PAUSED) return "Paused to save resources. Talk or type to continue.";
  if (connection === State.CLOSED) return "Not connected.";
  if (connection !== State.OPEN) return "Waiting for the connection…";
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
  return "Microphone off. Press the microphone, or hold Space to talk.";
}
