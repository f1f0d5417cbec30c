// What a page leaves to the page that replaces it in the same tab (a reload): the turns it was still
// waiting for, which the server may store only after the new page was rendered, and the messages it
// had not sent yet. Kept in sessionStorage (per tab) under the conversation's id; the next page of
// that conversation takes it once, if it is recent (an old one belongs to another visit).

const PREFIX = "parley.handover.";
const FRESH_MS = 60000;
const NOTHING = Object.freeze({ turns: [], texts: [] });

/** Leave {turns: [{turnId, userText}], texts: [text]} for the next page of `conversationId`. */
export function leaveHandover(conversationId, { turns, texts }) {
  if (!conversationId || (turns.length === 0 && texts.length === 0)) return;
  try {
    sessionStorage.setItem(PREFIX + conversationId, JSON.stringify({ at: Date.now(), turns, texts }));
  } catch {
    // Storage disabled or full: the server still stores the turns; the page just does not wait for them.
  }
}

/** What the previous page of `conversationId` left, removed from storage; nothing if it is old. */
export function takeHandover(conversationId) {
  if (!conversationId) return NOTHING;
  try {
    const key = PREFIX + conversationId;
    const handover = JSON.parse(sessionStorage.getItem(key) ?? "null");
    sessionStorage.removeItem(key);
    if (!handover || Date.now() - handover.at > FRESH_MS) return NOTHING;
    return { turns: handover.turns ?? [], texts: handover.texts ?? [] };
  } catch {
    return NOTHING;
  }
}
