"use strict";
// The egtr page: send an image to /v1/scene-graph, then draw its boxes, its graph and a table of its
// triplets; the top-k box and the score slider choose the triplets shown; hovering or clicking a row
// (or an edge) highlights that triplet's two boxes, two nodes and edge. Plain DOM and SVG, no library.

const FETCH_TOP_K = 100; // triplets asked of the server; the page shows a subset
const SVG = "http://www.w3.org/2000/svg";
// matplotlib's tab20, dark shades first (as in `egtr predict --draw`), one colour per object id
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
  "#c7c7c7", "#dbdb8d", "#9edae5"];
const GRAPH_WIDTH = 640, GRAPH_HEIGHT = 480;

const state = { graph: null, name: "graph", pinned: null, token: sessionStorage.getItem("egtr-token") || "" };
const $ = (selector) => document.querySelector(selector);
const colour = (id) => PALETTE[id % PALETTE.length];
// black or white text on a colour, by its luminance (as the PNG drawings do)
const textColour = (hex) => {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  return 0.299 * r + 0.587 * g + 0.114 * b > 0.55 ? "black" : "white";
};
const label = (graph, id) => `${id}: ${graph.objects[id].name}`;

function element(tag, attributes = {}, parent = null, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function setStatus(text, isError = false) {
  $("#status").textContent = text;
  $("#status").classList.toggle("error", isError);
}

// ------------------------------------------------------------------------------------------ the API
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    if (response.status === 401) $("#token-box").hidden = false;
    throw new Error(`${response.status}: ${body.detail || response.statusText}`);
  }
  return body;
}

async function showModel() {
  try {
    const model = await api("/v1/model");
    $("#model").textContent = `${model.name}: ${model.classes.length} classes, ` +
      `${model.predicates.length} predicates, ${model.device}, images resized to ${model.preprocessing.size}`;
  } catch (error) {
    $("#model").textContent = `model unavailable (${error.message})`;
  }
}

async function upload(file) {
  state.name = file.name.replace(/\.[^.]*$/, "") || "graph";
  state.pinned = null;
  $("#image").src = URL.createObjectURL(file);
  setStatus(`predicting ${file.name}…`);
  const started = performance.now();
  try {
    const form = new FormData();
    form.append("image", file, file.name); // multipart: the answer's "image" is the file's name
    const graph = await api(`/v1/scene-graph?top_k=${FETCH_TOP_K}`, { method: "POST", body: form });
    state.graph = graph;
    $("#drop").classList.remove("empty");
    $("#download").disabled = false;
    render();
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    setStatus(`${graph.objects.length} objects, ${graph.triplets.length} triplets in ${seconds} s`);
  } catch (error) {
    setStatus(`error ${error.message}`, true);
  }
}

// ------------------------------------------------------------------------------------------ drawing
function minScore() {
  const triplets = state.graph ? state.graph.triplets : [];
  const best = triplets.length ? triplets[0].score : 0;
  return best * Number($("#min-score").value) / 100;
}

function shownTriplets() {
  const topK = Math.max(1, Number($("#top-k").value) || 1);
  const threshold = minScore();
  return state.graph.triplets
    .map((triplet, rank) => ({ ...triplet, rank }))
    .filter((triplet) => triplet.score >= threshold)
    .slice(0, topK);
}

function render() {
  if (!state.graph) return;
  $("#min-score-value").textContent = minScore().toPrecision(3);
  const triplets = shownTriplets();
  const objects = [...new Set(triplets.flatMap((t) => [t.subject, t.object]))];
  drawBoxes(state.graph, objects);
  drawGraph(state.graph, objects, triplets);
  fillTable(state.graph, triplets);
  highlight(state.pinned);
}

function drawBoxes(graph, objects) {
  const svg = $("#boxes");
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${graph.width} ${graph.height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const fontSize = Math.max(graph.width, graph.height) / 55;
  for (const id of objects) {
    const [x0, y0, x1, y1] = graph.objects[id].box.map((v, i) => Math.min(Math.max(v, 0), i % 2 ? graph.height : graph.width));
    const group = element("g", { class: "box", "data-object": id }, svg);
    element("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, stroke: colour(id) }, group);
    const below = y0 < fontSize * 1.2;
    const place = { x: x0 + 2, y: below ? y0 + fontSize : y0 - fontSize / 4 };
    element("text", { ...place, fill: colour(id), "font-size": fontSize, "stroke-width": fontSize / 5 },
      group, `${label(graph, id)} ${graph.objects[id].score.toFixed(2)}`);
  }
}

// Fruchterman-Reingold from a circle: deterministic, fine for the few dozen nodes shown.
function layout(count, edges) {
  const cx = GRAPH_WIDTH / 2, cy = GRAPH_HEIGHT / 2, margin = 70;
  const points = Array.from({ length: count }, (_, i) => {
    const angle = (2 * Math.PI * i) / Math.max(count, 1) - Math.PI / 2;
    return { x: cx + 0.35 * GRAPH_WIDTH * Math.cos(angle), y: cy + 0.35 * GRAPH_HEIGHT * Math.sin(angle) };
  });
  if (count < 2) return count ? [{ x: cx, y: cy }] : [];
  const k = Math.sqrt((GRAPH_WIDTH * GRAPH_HEIGHT) / count) * 0.75;
  for (let step = 0; step < 300; step++) {
    const moves = points.map(() => ({ x: 0, y: 0 }));
    for (let a = 0; a < count; a++) {
      for (let b = a + 1; b < count; b++) {
        const dx = points[a].x - points[b].x, dy = points[a].y - points[b].y;
        const distance = Math.max(Math.hypot(dx, dy), 1), push = (k * k) / distance / distance;
        moves[a].x += dx * push; moves[a].y += dy * push; moves[b].x -= dx * push; moves[b].y -= dy * push;
      }
    }
    for (const [a, b] of edges) {
      const dx = points[a].x - points[b].x, dy = points[a].y - points[b].y;
      const pull = Math.hypot(dx, dy) / k;
      moves[a].x -= dx * pull; moves[a].y -= dy * pull; moves[b].x += dx * pull; moves[b].y += dy * pull;
    }
    const limit = 0.1 * GRAPH_WIDTH * (1 - step / 300);
    points.forEach((point, i) => {
      const length = Math.max(Math.hypot(moves[i].x, moves[i].y), 1e-9), scale = Math.min(length, limit) / length;
      point.x = Math.min(Math.max(point.x + moves[i].x * scale, margin), GRAPH_WIDTH - margin);
      point.y = Math.min(Math.max(point.y + moves[i].y * scale, 30), GRAPH_HEIGHT - 30);
    });
  }
  return stretch(points, margin, 30);
}

// scale the layout to fill the panel, keeping `mx`, `my` free at the sides for the node labels
function stretch(points, mx, my) {
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = x1 > x0 ? (GRAPH_WIDTH - 2 * mx) / (x1 - x0) : 0, sy = y1 > y0 ? (GRAPH_HEIGHT - 2 * my) / (y1 - y0) : 0;
  return points.map((p) => ({
    x: sx ? mx + (p.x - x0) * sx : GRAPH_WIDTH / 2,
    y: sy ? my + (p.y - y0) * sy : GRAPH_HEIGHT / 2,
  }));
}

// where the segment from a node's centre towards `target` leaves its box (half sizes hw, hh)
function boxExit(center, half, target) {
  const dx = target.x - center.x, dy = target.y - center.y;
  const t = Math.min(half.w / Math.max(Math.abs(dx), 1e-9), half.h / Math.max(Math.abs(dy), 1e-9), 1);
  return { x: center.x + dx * t, y: center.y + dy * t };
}

function drawGraph(graph, objects, triplets) {
  const svg = $("#graph");
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${GRAPH_WIDTH} ${GRAPH_HEIGHT}`);
  if (!objects.length) {
    element("text", { x: GRAPH_WIDTH / 2, y: GRAPH_HEIGHT / 2, "text-anchor": "middle", fill: "#667085" }, svg,
      "no triplets above the score");
    return;
  }
  const slot = new Map(objects.map((id, i) => [id, i]));
  const points = layout(objects.length, triplets.map((t) => [slot.get(t.subject), slot.get(t.object)]));
  const edgeLayer = element("g", {}, svg), nodeLayer = element("g", {}, svg);
  const halves = objects.map((id, i) => {
    const group = element("g", { class: "node", "data-object": id }, nodeLayer);
    const rect = element("rect", { rx: 6, fill: colour(id) }, group);
    const text = element("text", { x: points[i].x, y: points[i].y, fill: textColour(colour(id)) }, group, label(graph, id));
    const width = text.getComputedTextLength() + 16, height = 24;
    rect.setAttribute("x", points[i].x - width / 2); rect.setAttribute("y", points[i].y - height / 2);
    rect.setAttribute("width", width); rect.setAttribute("height", height);
    return { w: width / 2 + 2, h: height / 2 + 2 };
  });
  for (const triplet of triplets) {
    const a = slot.get(triplet.subject), b = slot.get(triplet.object);
    const p = points[a], q = points[b];
    const control = { x: (p.x + q.x) / 2 + 0.2 * (q.y - p.y), y: (p.y + q.y) / 2 - 0.2 * (q.x - p.x) };
    const start = boxExit(p, halves[a], control), end = boxExit(q, halves[b], control);
    const group = element("g", { class: "edge", "data-rank": triplet.rank }, edgeLayer);
    element("path", { d: `M${start.x},${start.y} Q${control.x},${control.y} ${end.x},${end.y}`,
      stroke: colour(triplet.subject) }, group);
    const angle = Math.atan2(end.y - control.y, end.x - control.x), size = 9;
    const corner = (turn) => `${end.x - size * Math.cos(angle + turn)},${end.y - size * Math.sin(angle + turn)}`;
    element("polygon", { points: `${end.x},${end.y} ${corner(0.4)} ${corner(-0.4)}`, fill: colour(triplet.subject) }, group);
    const middle = { x: 0.25 * start.x + 0.5 * control.x + 0.25 * end.x, y: 0.25 * start.y + 0.5 * control.y + 0.25 * end.y };
    element("text", { x: middle.x, y: middle.y, fill: colour(triplet.subject) }, group, triplet.predicate_name);
    group.addEventListener("mouseenter", () => highlight(triplet.rank));
    group.addEventListener("mouseleave", () => highlight(state.pinned));
    group.addEventListener("click", () => pin(triplet.rank));
  }
}

function fillTable(graph, triplets) {
  const body = $("#triplets tbody");
  body.replaceChildren();
  for (const triplet of triplets) {
    const row = body.insertRow();
    Object.assign(row.dataset, { rank: triplet.rank, subject: triplet.subject, object: triplet.object });
    const cells = [String(triplet.rank + 1), triplet.subject, triplet.predicate_name, triplet.object, triplet.score.toPrecision(4)];
    cells.forEach((value, column) => {
      const cell = row.insertCell();
      if (column === 1 || column === 3) {
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = colour(value);
        cell.append(swatch, label(graph, value));
      } else {
        cell.textContent = value;
      }
    });
    row.addEventListener("mouseenter", () => highlight(triplet.rank));
    row.addEventListener("mouseleave", () => highlight(state.pinned));
    row.addEventListener("click", () => pin(triplet.rank));
  }
}

// ------------------------------------------------------------------------------------------ highlight
function highlight(rank) {
  document.querySelectorAll(".highlight").forEach((node) => node.classList.remove("highlight"));
  document.querySelectorAll("tr.pinned").forEach((node) => node.classList.remove("pinned"));
  const row = rank === null ? null : document.querySelector(`#triplets tr[data-rank="${rank}"]`);
  document.body.classList.toggle("focus", row !== null);
  if (!row) return;
  row.classList.add("highlight");
  if (rank === state.pinned) row.classList.add("pinned");
  document.querySelector(`.edge[data-rank="${rank}"]`)?.classList.add("highlight");
  for (const id of [row.dataset.subject, row.dataset.object]) {
    document.querySelectorAll(`.box[data-object="${id}"], .node[data-object="${id}"]`)
      .forEach((node) => node.classList.add("highlight"));
  }
}

function pin(rank) {
  state.pinned = state.pinned === rank ? null : rank;
  highlight(state.pinned);
}

function download() {
  const blob = new Blob([JSON.stringify(state.graph, null, 1)], { type: "application/json" });
  const link = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: `${state.name}.json` });
  link.click();
  URL.revokeObjectURL(link.href);
}

// ------------------------------------------------------------------------------------------ wiring
function setup() {
  const drop = $("#drop");
  $("#file").addEventListener("change", (event) => event.target.files[0] && upload(event.target.files[0]));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("dragging"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    if (event.dataTransfer.files[0]) upload(event.dataTransfer.files[0]);
  });
  $("#top-k").addEventListener("input", render);
  $("#min-score").addEventListener("input", render);
  $("#download").addEventListener("click", download);
  $("#token-box").addEventListener("submit", (event) => event.preventDefault());
  $("#token").value = state.token;
  $("#token").addEventListener("change", (event) => {
    state.token = event.target.value.trim();
    sessionStorage.setItem("egtr-token", state.token);
    showModel();
  });
  showModel();
}

setup();
