// The page's one AudioContext, shared by capture and playback. Browsers keep a context created
// without a user gesture suspended, so it is made (or resumed) from gesture handlers only.

let context = null;

/** The shared context, created on first use; call from a click or key handler. */
export function audioContext() {
  if (context === null) context = new AudioContext({ latencyHint: "interactive" });
  // A refused resume leaves the context suspended; the next gesture calls this again.
  if (context.state === "suspended") context.resume().catch(() => {});
  return context;
}
