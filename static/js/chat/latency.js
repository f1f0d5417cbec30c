// A turn's latency as a compact chip (voice to voice) that expands to the t0–t4 breakdown.
// The stages with a segment add up to voice to voice: speech end → final transcript → first token → first audio.
// The fields are the server's (streaming/metrics.py METRIC_FIELDS), rendered into the page by the chat view.

import { h, icon } from "./dom.js";

const FIELDS = JSON.parse(document.getElementById("metric-fields").textContent);
const STAGES = FIELDS.filter((field) => field.segment);
// In the server's order, which breaks ties in the timeline.
const INSTANTS = FIELDS.filter((field) => field.unit === "epoch_s");

const BOLT = "M13 2 4 14h7l-1 8 9-12h-7l1-8z";

/** "742 ms", or "12.4 s" from ten seconds on, as the history page's chart writes it. */
export function formatMs(ms) {
  return ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/** The expandable latency chip for a `metrics` event, or null if the turn has no voice-to-voice figure. */
export function latencyDetails(metrics) {
  const total = metrics.voice_to_voice_ms;
  if (typeof total !== "number") return null;
  const typed = metrics.t0 === null || metrics.t0 === undefined;
  const label = typed ? "Message to first audio" : "Voice to voice";
  // A typed turn has no speech to end: its "endpointing" is only the hand-over to the reply.
  const stages = STAGES.filter(
    (stage) => typeof metrics[stage.name] === "number" && !(typed && stage.name === "endpointing_ms"),
  );
  const title = `${label} ${formatMs(total)}: ${stages.map((s) => `${s.label} ${formatMs(metrics[s.name])}`).join(", ")}`;
  const summary = h(
    "summary",
    { class: "latency-chip", title, "aria-label": `${label} ${formatMs(total)}. Show the breakdown.` },
    icon("bolt", BOLT),
    h("span", {}, formatMs(total)),
  );
  const panel = breakdown(metrics, stages, { label, total, typed });
  const details = h("details", { class: "latency" }, summary, panel);
  details.addEventListener("toggle", () => {
    if (details.open) panel.scrollIntoView({ block: "nearest" });
  });
  return details;
}

function breakdown(metrics, stages, { label, total, typed }) {
  const bar = h("div", { class: "latency-bar", "aria-hidden": "true" });
  for (const stage of stages) {
    bar.append(h("span", { class: `seg-${stage.segment}`, style: `flex-grow: ${Math.max(metrics[stage.name], 1)}` }));
  }
  const rows = h("dl", { class: "latency-stages" });
  for (const stage of stages) {
    rows.append(
      h(
        "div",
        { title: stage.hint },
        h("dt", {}, h("span", { class: `swatch swatch-${stage.segment}`, "aria-hidden": "true" }), stage.label),
        h("dd", {}, formatMs(metrics[stage.name])),
      ),
    );
  }
  rows.append(h("div", { class: "latency-total" }, h("dt", {}, label), h("dd", {}, formatMs(total))));
  return h("div", { class: "latency-panel" }, bar, rows, timeline(metrics, typed), footnote(metrics));
}

function timeline(metrics, typed) {
  const origin = typed ? metrics.speech_end : metrics.t0;
  const list = h("ol", { class: "latency-timeline", "aria-label": "Timeline of the turn" });
  if (typeof origin !== "number") return list;
  const instants = INSTANTS.filter((instant) => typeof metrics[instant.name] === "number");
  // In time order: a partial may land after the speech has ended.
  instants.sort((a, b) => metrics[a.name] - metrics[b.name]);
  for (const instant of instants) {
    const name = typed && instant.name === "speech_end" ? "message received" : instant.label;
    const offset = formatMs((metrics[instant.name] - origin) * 1000);
    list.append(h("li", {}, h("span", {}, name), h("span", {}, `+${offset}`)));
  }
  return list;
}

function footnote(metrics) {
  const parts = [];
  if (typeof metrics.asr_ms === "number") parts.push(`ASR compute ${formatMs(metrics.asr_ms)}`);
  if (typeof metrics.asr_rtf === "number") parts.push(`RTF ${metrics.asr_rtf.toFixed(2)}`);
  if (typeof metrics.audio_duration_s === "number") parts.push(`${metrics.audio_duration_s.toFixed(1)} s of speech`);
  if (metrics.partials) parts.push(`${metrics.partials} partial${metrics.partials === 1 ? "" : "s"}`);
  if (metrics.end_rule && typeof metrics.end_pause_ms === "number") {
    parts.push(`ended: ${metrics.end_rule} after a ${Math.round(metrics.end_pause_ms)} ms pause`);
  }
  if (metrics.reply_speculative) parts.push("reply begun during the pause");
  return parts.length ? h("p", { class: "latency-foot" }, parts.join(" · ")) : null;
}
