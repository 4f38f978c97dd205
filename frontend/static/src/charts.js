// Chart helpers for pages that plot data (instance runtime widgets, equity curves).
// Loaded only by pages that need it; exposes window.StratboxCharts for small page modules.
// Price/equity charts use TradingView lightweight-charts (attribution in the chart pages' footer);
// dense metric series use uPlot.
import { createChart, LineSeries, createSeriesMarkers } from "lightweight-charts";
import uPlot from "uplot";

const css = (name, fallback) =>
  getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

/** A line chart of {time (unix seconds), value} points; returns {chart, series, setData, update, setMarkers}. */
function lineChart(element, { points = [], height = 260 } = {}) {
  const chart = createChart(element, {
    height,
    autoSize: true,
    layout: { background: { color: "transparent" }, textColor: css("--fg-muted", "#555") },
    grid: { vertLines: { color: css("--border", "#e3e6ea") }, horzLines: { color: css("--border", "#e3e6ea") } },
    timeScale: { timeVisible: true, secondsVisible: true },
  });
  const series = chart.addSeries(LineSeries, { color: css("--accent", "#1f5fbf"), lineWidth: 2 });
  series.setData(points);
  let markers = null;
  return {
    chart,
    series,
    setData: (data) => series.setData(data),
    update: (point) => series.update(point),
    setMarkers: (list) => {
      if (markers) markers.setMarkers(list);
      else markers = createSeriesMarkers(series, list);
    },
  };
}

/** A compact multi-series plot (uPlot) for metrics: data = [xs, ys1, ys2, ...].
 * `timeX`: the x values are unix seconds (else plain numbers, e.g. a bar index). */
function metricPlot(element, { labels = ["value"], data = [[]], height = 160, timeX = true } = {}) {
  const palette = [css("--accent", "#1f5fbf"), css("--ok", "#1d7a3a"), css("--danger", "#b42318"), "#8a5a00", "#5b3aa3"];
  const opts = {
    width: element.clientWidth || 600,
    height,
    scales: { x: { time: timeX } },
    series: [{}, ...labels.map((label, i) => ({ label, stroke: palette[i % palette.length], width: 1.5, spanGaps: true }))],
    axes: [{}, {}],
  };
  const plot = new uPlot(opts, data, element);
  new ResizeObserver(() => {
    if (element.clientWidth) plot.setSize({ width: element.clientWidth, height });
  }).observe(element);
  return plot;
}

// Declarative use: <div data-line-chart='[{"time":...,"value":...}]'></div>
function autoInit(root) {
  root.querySelectorAll("[data-line-chart]:not([data-chart-ready])").forEach((el) => {
    el.dataset.chartReady = "1";
    lineChart(el, { points: JSON.parse(el.dataset.lineChart || "[]") });
  });
}

window.StratboxCharts = { lineChart, metricPlot, autoInit };
document.addEventListener("DOMContentLoaded", () => autoInit(document));
document.addEventListener("htmx:load", (event) => autoInit(event.target));
