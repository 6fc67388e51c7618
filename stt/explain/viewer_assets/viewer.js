// The stt explanation viewer (stt/explain/viewer_page.py writes the data it reads).
// window.STT_VIEWER_INDEX: {header, videos: [summary]}; data/chunk_<k>.js calls
// STT_VIEWER_CHUNK(k, [detail]) for the details of videos k*chunk_size.. (viewer_data.py).
// The view state (filters, sort, page, open video) lives in the address's #fragment.
"use strict";
(function () {
  const INDEX = window.STT_VIEWER_INDEX;
  if (!INDEX) {
    document.body.textContent = "data/index.js is missing: rebuild with python -m stt.explain.view";
    return;
  }
  const H = INDEX.header;
  const VIDEOS = INDEX.videos;
  const PAGE_SIZE = 24;
  const TILE = 96; // pixels of a segment frame
  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#17becf"];
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, children = []) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "text") node.textContent = value;
      else if (key === "style") Object.assign(node.style, value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  };
  const SVG = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs = {}) => {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  };
  const className = (c) => (c < 0 ? "unlabelled" : H.class_names[c] ?? `class ${c}`);

  // --- state in the address -------------------------------------------------------------
  const DEFAULTS = { class: "", explainer: H.explainers[0] || "", hit: "", correct: "", level: "",
    sort: "row", page: "0", video: "" };
  let state = { ...DEFAULTS };
  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    state = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS)) if (params.has(key)) state[key] = params.get(key);
    if (!H.explainers.includes(state.explainer)) state.explainer = H.explainers[0];
  }
  function writeHash() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(state)) if (value !== DEFAULTS[key]) params.set(key, value);
    history.replaceState(null, "", "#" + params.toString());
  }

  // --- chunks of details, loaded as scripts (file:// pages cannot fetch) ------------------
  const chunks = {};
  const waiting = {};
  window.STT_VIEWER_CHUNK = (k, details) => {
    chunks[k] = details;
    (waiting[k] || []).forEach((resolve) => resolve(details));
  };
  function detailOf(row) {
    const k = Math.floor(row / H.chunk_size);
    const pick = (details) => details[row - k * H.chunk_size];
    if (chunks[k]) return Promise.resolve(pick(chunks[k]));
    return new Promise((resolve) => {
      if (!waiting[k]) {
        waiting[k] = [];
        document.head.append(el("script", { src: `data/chunk_${k}.js` }));
      }
      waiting[k].push((details) => resolve(pick(details)));
    });
  }

  // --- filters and sorting ----------------------------------------------------------------
  function keeps(v) {
    const e = state.explainer;
    if (state.class !== "" && v.label !== Number(state.class)) return false;
    if (state.correct === "correct" && v.correct !== true) return false;
    if (state.correct === "wrong" && v.correct !== false) return false;
    if (state.level !== "" && v.level !== state.level) return false;
    const rate = v.spatial_hit_rate[e];
    const when = v.temporal_hit[e];
    switch (state.hit) {
      case "where-hit": return rate === 1;
      case "where-miss": return rate !== null && rate !== undefined && rate < 1;
      case "where-none": return rate === null || rate === undefined;
      case "when-hit": return when === true;
      case "when-miss": return when === false;
      default: return true;
    }
  }
  function matching() {
    const list = VIDEOS.filter(keeps);
    const e = state.explainer;
    const rate = (v) => v.spatial_hit_rate[e] ?? -1;
    const by = {
      "confidence-desc": (a, b) => b.confidence - a.confidence,
      "confidence-asc": (a, b) => a.confidence - b.confidence,
      "pointing-desc": (a, b) => rate(b) - rate(a),
      "pointing-asc": (a, b) => rate(a) - rate(b),
    }[state.sort];
    return by ? list.sort((a, b) => by(a, b) || a.row - b.row) : list;
  }

  // --- controls ---------------------------------------------------------------------------
  function fillSelect(select, options) {
    select.replaceChildren(...options.map(([value, text]) => el("option", { value, text })));
  }
  function setupControls() {
    $("title").textContent = H.title;
    document.title = H.title;
    const labels = [...new Set(VIDEOS.map((v) => v.label))].sort((a, b) => a - b);
    fillSelect($("filter-class"), [["", "all"], ...labels.map((c) => [String(c), className(c)])]);
    fillSelect($("explainer"), H.explainers.map((e) => [e, e]));
    const levels = [...new Set(VIDEOS.map((v) => v.level))].sort();
    fillSelect($("filter-level"), [["", "all"], ...levels.filter((l) => l).map((l) => [l, l])]);
    $("level-control").hidden = levels.filter((l) => l).length < 2;
    $("total-count").textContent = VIDEOS.length;
    const bind = { "filter-class": "class", explainer: "explainer", "filter-hit": "hit",
      "filter-correct": "correct", "filter-level": "level", sort: "sort" };
    for (const [id, key] of Object.entries(bind)) {
      $(id).addEventListener("change", () => {
        state[key] = $(id).value;
        if (key !== "explainer") state.page = "0";
        render();
      });
    }
    $("prev-page").addEventListener("click", () => { state.page = String(Number(state.page) - 1); render(); });
    $("next-page").addEventListener("click", () => { state.page = String(Number(state.page) + 1); render(); });
  }
  function syncControls() {
    const bind = { "filter-class": "class", explainer: "explainer", "filter-hit": "hit",
      "filter-correct": "correct", "filter-level": "level", sort: "sort" };
    for (const [id, key] of Object.entries(bind)) $(id).value = state[key];
  }

  // --- the list of cards ------------------------------------------------------------------
  function frameBackground(node, row, segment, size) {
    node.style.backgroundImage = `url("media/${row}_frames.jpg")`;
    node.style.backgroundSize = `${H.num_segments * size}px ${size}px`;
    node.style.backgroundPosition = `${-segment * size}px 0px`;
  }
  function badge(text, good) {
    return el("span", { class: "badge " + (good === null || good === undefined ? "na" : good ? "ok" : "bad"), text });
  }
  function card(v) {
    const e = state.explainer;
    const thumb = el("div", { class: "thumb" });
    if (H.has_frames) {
      thumb.style.backgroundImage = `url("media/${v.row}_frames.jpg")`;
      thumb.style.backgroundSize = `${H.num_segments * 100}% 100%`;
      const middle = Math.floor(H.num_segments / 2);
      thumb.style.backgroundPosition = `${(middle / Math.max(H.num_segments - 1, 1)) * 100}% 0`;
    }
    const rate = v.spatial_hit_rate[e];
    const node = el("div", { class: "card" + (state.video === v.id ? " current" : ""), "data-video-id": v.id }, [
      thumb,
      el("div", { class: "id", text: v.id, title: v.id }),
      el("div", { text: `${className(v.label)} \u2192 ${className(v.predicted)} (${v.confidence.toFixed(2)})` }),
      el("div", {}, [
        badge(v.correct === null ? "no label" : v.correct ? "correct" : "wrong", v.correct),
        badge(rate === null || rate === undefined ? "where \u2014" : `where ${(rate * 100).toFixed(0)}%`,
          rate === null || rate === undefined ? null : rate === 1),
        badge(v.temporal_hit[e] === null ? "when \u2014" : v.temporal_hit[e] ? "when hit" : "when miss",
          v.temporal_hit[e]),
      ]),
    ]);
    node.addEventListener("click", () => { state.video = v.id; render(); });
    return node;
  }
  function renderCards(list) {
    const pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
    const page = Math.min(Math.max(0, Number(state.page) || 0), pages - 1);
    state.page = String(page);
    const shown = list.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
    $("cards").replaceChildren(...shown.map(card));
    $("shown-count").textContent = shown.length;
    $("matched-count").textContent = list.length;
    $("page-label").textContent = `page ${page + 1} / ${pages}`;
    $("prev-page").disabled = page === 0;
    $("next-page").disabled = page >= pages - 1;
  }

  // --- one video ----------------------------------------------------------------------------
  function hot(v) { // [0,1] -> rgb; r+g+b rises strictly with v (the test reads it back)
    const c = (x) => Math.round(255 * Math.min(1, Math.max(0, x)));
    return [c(3 * v), c(3 * v - 1), c(3 * v - 2)];
  }
  function drawOverlay(canvas, values, grid) {
    // Bilinear upsampling with half-pixel centres (as jax.image.resize 'linear'), then `hot`.
    const [h, w] = grid;
    const size = canvas.width;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(size, size);
    const at = (i, j) => values[Math.min(Math.max(i, 0), h - 1) * w + Math.min(Math.max(j, 0), w - 1)];
    for (let y = 0; y < size; y++) {
      const fy = ((y + 0.5) * h) / size - 0.5;
      const i0 = Math.floor(fy);
      const dy = fy - i0;
      for (let x = 0; x < size; x++) {
        const fx = ((x + 0.5) * w) / size - 0.5;
        const j0 = Math.floor(fx);
        const dx = fx - j0;
        const value = (1 - dy) * ((1 - dx) * at(i0, j0) + dx * at(i0, j0 + 1)) +
          dy * ((1 - dx) * at(i0 + 1, j0) + dx * at(i0 + 1, j0 + 1));
        const [r, g, b] = hot(value / 255);
        const p = 4 * (y * size + x);
        image.data[p] = r; image.data[p + 1] = g; image.data[p + 2] = b;
        image.data[p + 3] = Math.round(60 + 0.75 * value); // low relevance lets the frame show
      }
    }
    ctx.putImageData(image, 0, 0);
  }
  function frameRow(v, detail, name) {
    const entry = detail.explainers[name];
    const tiles = detail.segment_mask.map((valid, t) => {
      const tile = el("div", { class: "tile" + (valid ? "" : " padded"), style: { width: TILE + "px", height: TILE + "px" } });
      tile.append(el("span", { class: "t", text: `${t}s` }));
      if (!valid) return tile;
      if (H.has_frames) frameBackground(tile, v.row, t, TILE);
      const canvas = el("canvas", { width: TILE, height: TILE, "data-explainer": name, "data-segment": t });
      drawOverlay(canvas, entry.where[t], entry.grid);
      tile.append(canvas);
      for (const [x0, y0, x1, y1] of detail.boxes[t]) {
        tile.append(el("div", { class: "box", style: { left: `${x0 * 100}%`, top: `${y0 * 100}%`,
          width: `${(x1 - x0) * 100}%`, height: `${(y1 - y0) * 100}%` } }));
      }
      const point = entry.points[t];
      if (point) {
        const hit = entry.hits[t];
        tile.append(el("div", { class: "point " + (hit === null ? "none" : hit ? "hit" : "miss"),
          title: hit === null ? "no box" : hit ? "hit" : "miss",
          style: { left: `${point[0] * 100}%`, top: `${point[1] * 100}%` } }));
      }
      return tile;
    });
    return el("div", { class: "row" + (name === state.explainer ? " current" : "") },
      [el("div", { class: "name", text: name }), ...tiles]);
  }
  function timeline(v, detail) {
    const T = H.num_segments;
    const width = T * TILE;
    const height = 90;
    const box = el("div", { class: "timeline", style: { width: width + "px", height: height + "px", background: "#222" } });
    box.append(el("img", { src: `media/${v.row}_mel.jpg`, alt: "log-mel", onerror: "this.remove()" }));
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
    if (detail.event) {
      const [start, end] = detail.event;
      svg.append(svgEl("rect", { x: start * TILE, y: 0, width: (end - start) * TILE, height,
        fill: "rgba(255,255,255,0.18)", stroke: "#fff", "stroke-dasharray": "4 3" }));
    }
    detail.segment_mask.forEach((valid, t) => {
      if (!valid) svg.append(svgEl("rect", { x: t * TILE, y: 0, width: TILE, height, fill: "rgba(180,180,180,0.75)" }));
    });
    let top = 1e-6;
    for (const entry of Object.values(detail.explainers)) {
      for (const key of ["when", "when_audio", "when_visual"]) if (entry[key]) top = Math.max(top, ...entry[key]);
    }
    const legend = el("div", { class: "legend" });
    H.explainers.forEach((name, index) => {
      const entry = detail.explainers[name];
      const colour = COLOURS[index % COLOURS.length];
      const styles = { when: "", when_audio: "6 3", when_visual: "2 3" };
      for (const [key, dash] of Object.entries(styles)) {
        if (!entry[key]) continue;
        const points = entry[key].map((value, t) => `${(t + 0.5) * TILE},${height - 4 - (value / top) * (height - 10)}`);
        svg.append(svgEl("polyline", { points: points.join(" "), fill: "none", stroke: colour,
          "stroke-width": name === state.explainer ? 2.5 : 1.2, "stroke-dasharray": dash,
          "data-explainer": name, "data-curve": key }));
        const label = key === "when" ? name : `${name} ${key === "when_audio" ? "\u03b2 audio" : "\u03b2 visual"}`;
        legend.append(el("span", {}, [el("i", { style: { borderColor: colour, borderTopStyle: { "": "solid", "6 3": "dashed", "2 3": "dotted" }[dash] } }), label]));
      }
    });
    box.append(svg);
    return el("div", {}, [el("div", { class: "row" }, [el("div", { class: "name", text: "when / log-mel", style: { paddingTop: "30px" } }), box]),
      el("div", { class: "row" }, [el("div", { class: "name" }), legend])]);
  }
  function curvePlots(detail) {
    const figures = [];
    const tests = ["spatial_positive", "spatial_negative", "temporal_positive", "temporal_negative"];
    for (const test of tests) {
      const svg = svgEl("svg", { width: 180, height: 110, viewBox: "0 0 180 110" });
      svg.append(svgEl("rect", { x: 25, y: 5, width: 150, height: 90, fill: "#fafafa", stroke: "#ccc" }));
      let any = false;
      H.explainers.forEach((name, index) => {
        const curve = detail.explainers[name].curves?.[test];
        if (!curve || curve.every((value) => value === null)) return;
        any = true;
        const xs = H.fractions;
        const points = curve.map((value, i) => value === null ? null : `${25 + (xs[i] / 0.9) * 150},${95 - value * 90}`).filter((p) => p);
        svg.append(svgEl("polyline", { points: points.join(" "), fill: "none", stroke: COLOURS[index % COLOURS.length], "stroke-width": 1.5, "data-explainer": name }));
      });
      if (!any) continue;
      const label = svgEl("text", { x: 2, y: 12, "font-size": 9 });
      label.textContent = "p";
      svg.append(label);
      figures.push(el("figure", {}, [svg, el("figcaption", { text: test.replace("_", ", ") })]));
    }
    if (!figures.length) return el("div", { text: "No perturbation curves saved for this video (run --mode=explain)." });
    return el("div", {}, [
      el("div", { class: "note", text: "Perturbation: the predicted class's probability (0\u20131) as the fraction of the input the explainer calls most (positive) or least (negative) relevant is removed, 0 to 0.9." }),
      el("div", { class: "curves" }, figures)]);
  }
  async function renderDetail() {
    const section = $("detail");
    const v = VIDEOS.find((video) => video.id === state.video);
    if (!v) { section.hidden = true; section.replaceChildren(); return; }
    const detail = await detailOf(v.row);
    if (state.video !== v.id) return; // another video was opened meanwhile
    const top = detail.top_classes.map(([c, p]) => `${className(c)} ${(p * 100).toFixed(1)}%`).join(", ");
    section.replaceChildren(
      el("h2", { "data-video-id": v.id, text: v.id }),
      el("div", { text: `true: ${className(v.label)} \u00b7 predicted: ${className(v.predicted)} (${(v.confidence * 100).toFixed(1)}%) \u00b7 top: ${top}` +
        (v.level ? ` \u00b7 level: ${v.level}` : "") + (detail.event ? ` \u00b7 event ${detail.event[0]}\u2013${detail.event[1]} s` : " \u00b7 no annotated event") }),
      ...H.explainers.map((name) => frameRow(v, detail, name)),
      timeline(v, detail),
      curvePlots(detail),
    );
    section.hidden = false;
  }

  // --- everything ---------------------------------------------------------------------------
  let current = [];
  function render() {
    syncControls();
    current = matching();
    renderCards(current);
    writeHash();
    renderDetail();
  }
  function step(delta) {
    if (!current.length) return;
    const index = current.findIndex((v) => v.id === state.video);
    const next = index < 0 ? 0 : Math.min(Math.max(index + delta, 0), current.length - 1);
    state.video = current[next].id;
    state.page = String(Math.floor(next / PAGE_SIZE));
    render();
  }
  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "SELECT" || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "j" || event.key === "ArrowRight") step(1);
    else if (event.key === "k" || event.key === "ArrowLeft") step(-1);
    else if (event.key === "e") {
      const index = H.explainers.indexOf(state.explainer);
      state.explainer = H.explainers[(index + 1) % H.explainers.length];
      render();
    } else if (event.key === "Escape") { state.video = ""; render(); }
  });
  window.addEventListener("hashchange", () => { readHash(); render(); });
  readHash();
  setupControls();
  render();
})();
