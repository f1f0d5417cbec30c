// Draws the per-turn latency chart of a conversation page as an inline SVG stacked bar chart.
// Data comes from two json_script elements: the bars [{label, status, typed, endpointing, llm, tts, asr,
// voice_to_voice}] and the stacked segments [{key, name}] (from streaming/metrics.py, via the view).
// The stacked segments add up to voice to voice; ASR compute happens within the endpointing window,
// so it is drawn as a thin band inside that segment rather than as a stage of its own.
// Colours come from pages.css classes, so the chart follows the light and dark themes.
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  // A typed message has no speech to end-point: its first segment is the wait before the reply.
  var TYPED_NAMES = { endpointing: "Queued" };
  var MIN_WIDTH = 240;
  var TICK_SPACING = 80;
  var LABEL_W = 96;
  var ASR_BAND_H = 5;
  var VALUE_W = 72;
  var BAR_H = 18;
  var GAP = 10;
  var AXIS_H = 24;

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceStep(max, ticks) {
    var rough = max / ticks;
    var power = Math.pow(10, Math.floor(Math.log10(rough)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * power >= rough) return steps[i] * power;
    }
    return 10 * power;
  }

  function formatMs(ms) {
    return ms >= 10000 ? (ms / 1000).toFixed(1) + " s" : Math.round(ms) + " ms";
  }

  // Drawn at the figure's own width so text keeps its size on narrow screens; redrawn on resize.
  function draw(figure, bars, segments) {
    var width = Math.max(figure.clientWidth, MIN_WIDTH);
    var totals = bars.map(function (bar) {
      return segments.reduce(function (sum, seg) { return sum + (bar[seg.key] || 0); }, 0);
    });
    var max = Math.max.apply(null, totals.concat([1]));
    var plotW = width - LABEL_W - VALUE_W;
    var step = niceStep(max, Math.max(2, Math.floor(plotW / TICK_SPACING)));
    var axisMax = Math.ceil(max / step) * step;
    var height = bars.length * (BAR_H + GAP) + AXIS_H;
    var scale = function (ms) { return (ms / axisMax) * plotW; };

    var svg = el("svg", {
      viewBox: "0 0 " + width + " " + height,
      role: "img",
      "aria-label": "Latency of " + bars.length + " turns, stacked by stage",
      class: "latency-svg",
    });

    for (var tick = 0; tick <= axisMax + step / 2; tick += step) {
      var x = LABEL_W + scale(tick);
      svg.appendChild(el("line", { x1: x, x2: x, y1: 0, y2: height - AXIS_H + 4, class: "chart-grid" }));
      svg.appendChild(el("text", { x: x, y: height - 6, "text-anchor": "middle", class: "chart-axis" }, formatMs(tick)));
    }

    bars.forEach(function (bar, row) {
      var y = row * (BAR_H + GAP) + GAP / 2;
      var group = el("g", { class: "chart-row" });
      var label = bar.typed ? bar.label + " (typed)" : bar.label;
      group.appendChild(el("text", { x: LABEL_W - 10, y: y + BAR_H / 2, "text-anchor": "end", "dominant-baseline": "central", class: "chart-label" }, label));
      var offset = 0;
      segments.forEach(function (seg) {
        var value = bar[seg.key] || 0;
        if (value <= 0) return;
        var rect = el("rect", {
          x: LABEL_W + scale(offset),
          y: y,
          width: Math.max(scale(value), 1),
          height: BAR_H,
          class: "seg seg-" + seg.key,
        });
        var name = bar.typed && TYPED_NAMES[seg.key] ? TYPED_NAMES[seg.key] : seg.name;
        rect.appendChild(el("title", {}, label + " · " + name + ": " + formatMs(value)));
        group.appendChild(rect);
        offset += value;
      });
      var asr = Math.min(bar.asr || 0, bar.endpointing || 0);
      if (asr > 0) {
        // Where in the window the decoding ran is not stored, so the band sits at the window's end.
        var band = el("rect", {
          x: LABEL_W + scale(bar.endpointing - asr),
          y: y + BAR_H - ASR_BAND_H,
          width: Math.max(scale(asr), 1),
          height: ASR_BAND_H,
          class: "seg seg-asr",
        });
        band.appendChild(el("title", {}, label + " · ASR, within endpointing: " + formatMs(bar.asr)));
        group.appendChild(band);
      }
      var total = bar.voice_to_voice != null ? bar.voice_to_voice : totals[row];
      group.appendChild(el("text", { x: LABEL_W + scale(offset) + 8, y: y + BAR_H / 2, "dominant-baseline": "central", class: "chart-value" }, formatMs(total)));
      svg.appendChild(group);
    });

    var previous = figure.querySelector("svg.latency-svg");
    if (previous) previous.remove();
    figure.insertBefore(svg, figure.querySelector("figcaption"));
  }

  document.querySelectorAll("[data-latency-chart]").forEach(function (figure) {
    var source = document.getElementById(figure.dataset.latencyChart);
    if (!source) return;
    var segmentSource = document.getElementById(figure.dataset.latencySegments);
    var bars = JSON.parse(source.textContent);
    if (!bars.length || !segmentSource) return;
    var segments = JSON.parse(segmentSource.textContent);
    draw(figure, bars, segments);
    var lastWidth = figure.clientWidth;
    window.addEventListener("resize", function () {
      if (figure.clientWidth !== lastWidth) {
        lastWidth = figure.clientWidth;
        draw(figure, bars, segments);
      }
    });
  });
})();
