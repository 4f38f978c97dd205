// Chart helpers for pages that plot data (instance runtime widgets, equity curves).
// Loaded only by pages that need it; exposes window.StratboxCharts for small page modules.
// Price/equity charts use TradingView lightweight-charts (attribution in the chart pages' footer);
// dense metric series use uPlot.
import { createChart, CandlestickSeries, LineSeries, createSeriesMarkers } from "lightweight-charts";
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

/** Candles {time, open, high, low, close} with markers (the instance's fills) on them. */
function candleChart(element, { candles = [], markers = [], height = 260 } = {}) {
  const chart = createChart(element, {
    height,
    autoSize: true,
    layout: { background: { color: "transparent" }, textColor: css("--fg-muted", "#555") },
    grid: { vertLines: { color: css("--border", "#e3e6ea") }, horzLines: { color: css("--border", "#e3e6ea") } },
    timeScale: { timeVisible: true, secondsVisible: true },
  });
  const series = chart.addSeries(CandlestickSeries, {
    upColor: "#1d7a3a", downColor: "#b42318", borderVisible: false, wickUpColor: "#1d7a3a", wickDownColor: "#b42318",
  });
  series.setData(candles);
  if (markers.length) createSeriesMarkers(series, markers);
  chart.timeScale().fitContent();
  return { chart, series };
}

const PALETTE = ["#1f5fbf", "#b35c00", "#1d7a3a", "#b42318", "#5b3aa3"];

/** Several {name, points: [{time, value}]} curves on one chart (e.g. two backtests compared). */
function multiLineChart(element, curves, { height = 280 } = {}) {
  const chart = createChart(element, {
    height,
    autoSize: true,
    layout: { background: { color: "transparent" }, textColor: css("--fg-muted", "#555") },
    grid: { vertLines: { color: css("--border", "#e3e6ea") }, horzLines: { color: css("--border", "#e3e6ea") } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  curves.forEach((curve, i) => {
    const series = chart.addSeries(LineSeries, { color: PALETTE[i % PALETTE.length], lineWidth: 2, title: curve.name });
    series.setData(curve.points || []);
  });
  chart.timeScale().fitContent();
  return chart;
}

const GROUPED = new Intl.NumberFormat(undefined, { maximumFractionDigits: 6 });
// Index axes (bar 0, 1, 2, …) step by whole numbers only.
const INTEGER_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

/** The width an axis needs for its longest label (uPlot's default 50 px cut "60,200" to "0,200"). */
function axisSize(self, values, axisIdx, cycleNum) {
  const axis = self.axes[axisIdx];
  if (cycleNum > 1) return axis._size; // uPlot converges by re-asking; keep the first answer
  let size = axis.ticks.size + axis.gap;
  const longest = (values || []).reduce((acc, v) => (String(v).length > acc.length ? String(v) : acc), "");
  if (longest) {
    self.ctx.font = axis.font[0];
    size += self.ctx.measureText(longest).width / (window.devicePixelRatio || 1);
  }
  return Math.ceil(size) + 4;
}

/** A compact multi-series plot (uPlot) for metrics: data = [xs, ys1, ys2, ...].
 * `timeX`: the x values are unix seconds (else plain numbers, e.g. a bar index). */
function metricPlot(element, { labels = ["value"], data = [[]], height = 160, timeX = true } = {}) {
  const palette = [css("--accent", "#1f5fbf"), css("--ok", "#1d7a3a"), css("--danger", "#b42318"), "#8a5a00", "#5b3aa3"];
  const integerX = !timeX && (data[0] || []).every((x) => Number.isInteger(x));
  const xAxis = integerX
    ? { incrs: INTEGER_STEPS, values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? GROUPED.format(v) : "")) }
    : {};
  const opts = {
    width: element.clientWidth || 600,
    height,
    scales: { x: { time: timeX } },
    series: [{}, ...labels.map((label, i) => ({ label, stroke: palette[i % palette.length], width: 1.5, spanGaps: true }))],
    axes: [xAxis, { size: axisSize, values: (u, splits) => splits.map((v) => (v === null ? "" : GROUPED.format(v))) }],
  };
  const plot = new uPlot(opts, data, element);
  element._plot = plot; // tests read the rendered axis labels and sizes from here
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

window.StratboxCharts = { lineChart, multiLineChart, candleChart, metricPlot, autoInit, axisSize };
document.addEventListener("DOMContentLoaded", () => autoInit(document));
document.addEventListener("htmx:load", (event) => autoInit(event.target));
