// The clinician page: builds its form from /v1/schema, posts to /v1/explain, shows the
// probability, the decision at the server's threshold and the explanation. No external code.
// Query parameters prefill the form (record=JSON, sequence=JSON, png=base64) and run=1
// submits it on load, so a headless browser can drive the page without clicks.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { schema: null, image: null };
const ITEM = { tabular: "record", image: "image", sequence: "sequence" };

function headers() {
  const result = { "content-type": "application/json" };
  const key = $("api-key").value;
  if (key) result["x-api-key"] = key;
  return result;
}

function problem(body, status) {
  if (body && body.message) return `${status}: ${body.message}`;
  if (body && typeof body.detail === "string") return `${status}: ${body.detail}`;
  return `${status}: request failed`;
}

async function call(path, payload) {
  const options = { headers: headers() };
  if (payload !== undefined) {
    options.method = "POST";
    options.body = JSON.stringify(payload);
  }
  const response = await fetch(path, options);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(problem(body, response.status));
  return body;
}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

function fieldInput(field) {
  const id = `field-${field.name}`;
  if (field.type === "number") {
    return element("input", { id, name: field.name, type: "number", step: "any",
      min: field.low, max: field.high, required: "" });
  }
  if (field.type === "boolean") return element("input", { id, name: field.name, type: "checkbox" });
  const select = element("select", { id, name: field.name });
  for (const choice of field.choices) select.append(element("option", { value: choice }, choice));
  return select;
}

function buildForm(schema) {
  const box = $("fields");
  if (schema.kind === "tabular") {
    for (const field of schema.fields) {
      const label = element("label", {}, field.description);
      const hint = field.type === "number" ? ` (${field.unit}, ${field.low}–${field.high})` : "";
      label.append(element("span", { class: "unit" }, hint), fieldInput(field));
      box.append(label);
    }
  } else if (schema.kind === "sequence") {
    const time = element("label", {}, `time: measurement times, oldest first`);
    time.append(element("span", { class: "unit" }, ` (${schema.time_unit}; the model reads the `
      + `last ${schema.sequence_length} steps of ${schema.sequence_step})`),
    element("textarea", { id: "field-time", name: "time", rows: "2" }));
    box.append(time);
    for (const name of schema.channel_names) {
      const [low, high] = schema.channel_ranges[name];
      const label = element("label", {}, `${name}: one value per time, - where not measured`);
      label.append(element("span", { class: "unit" },
        ` (${schema.channel_units[name]}, ${low}–${high}; empty: never measured)`),
      element("textarea", { id: `field-${name}`, name, rows: "2" }));
      box.append(label);
    }
  } else {
    const label = element("label", {},
      `Image: ${schema.image_size}×${schema.image_size} PNG (8-bit) or DICOM`);
    const input = element("input", { id: "image-file", type: "file", accept: ".png,.dcm,image/png" });
    input.addEventListener("change", () => readFile(input.files[0]));
    label.append(input);
    box.append(label);
  }
}

function readFile(file) {
  const reader = new FileReader();
  reader.onload = () => {
    const isPng = file.type === "image/png" || file.name.toLowerCase().endsWith(".png");
    state.image = { [isPng ? "png" : "dicom"]: reader.result };
  };
  reader.readAsDataURL(file);
}

function readForm(schema) {
  if (schema.kind === "image") {
    if (!state.image) throw new Error("choose an image file first");
    return state.image;
  }
  const item = {};
  if (schema.kind === "sequence") {
    for (const name of ["time", ...schema.channel_names]) {
      const text = $(`field-${name}`).value.trim();
      if (!text) continue;
      // "-" is not measured; a token that is no number is sent as text, so the API refuses it
      // (JSON would turn NaN into null, "not measured", silently)
      item[name] = text.split(/[\s,;]+/).map((token) => (token === "-" ? null
        : Number.isFinite(Number(token)) ? Number(token) : token));
    }
    return item;
  }
  for (const field of schema.fields) {
    const input = $(`field-${field.name}`);
    if (field.type === "boolean") item[field.name] = input.checked;
    else if (field.type === "category") item[field.name] = input.value;
    else if (input.value !== "") item[field.name] = Number(input.value);
  }
  return item;
}

function fill(schema, params) {
  if (params.get("key")) $("api-key").value = params.get("key");
  const given = params.get(ITEM[schema.kind]);
  if (schema.kind === "image" && params.get("png")) state.image = { png: params.get("png") };
  if (!given) return;
  for (const [name, value] of Object.entries(JSON.parse(given))) {
    const input = $(`field-${name}`);
    if (!input) continue;
    if (input.type === "checkbox") input.checked = Boolean(value);
    else if (Array.isArray(value)) input.value = value.map((v) => (v === null ? "-" : v)).join(", ");
    else input.value = String(value);
  }
}

function bars(values) {
  const box = $("explanation");
  const entries = Object.entries(values).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const peak = Math.max(1e-12, ...entries.map(([, v]) => Math.abs(v)));
  for (const [name, value] of entries) {
    const row = element("div", { class: "bar-row", "data-field": name, "data-value": value });
    const track = element("div", { class: "bar-track" });
    const bar = element("div", { class: `bar ${value >= 0 ? "up" : "down"}` });
    bar.style.width = `${(50 * Math.abs(value)) / peak}%`;
    track.append(bar);
    row.append(element("span", {}, name), track, element("span", { class: "bar-value" }, value.toFixed(3)));
    box.append(row);
  }
}

function heatmap(grid) {
  const canvas = $("overlay");
  canvas.hidden = false;
  const context = canvas.getContext("2d");
  const cell = canvas.width / grid.length;
  const paint = () => {
    grid.forEach((row, y) => row.forEach((heat, x) => {
      context.fillStyle = `rgba(255, 40, 0, ${0.6 * heat})`;
      context.fillRect(x * cell, y * cell, cell, cell);
    }));
    $("explanation").setAttribute("data-cells", String(grid.length * grid[0].length));
  };
  const source = state.image && state.image.png;
  if (!source) return paint();
  const picture = new Image();
  picture.onload = () => {
    context.imageSmoothingEnabled = false;
    context.drawImage(picture, 0, 0, canvas.width, canvas.height);
    paint();
  };
  picture.src = source.startsWith("data:") ? source : `data:image/png;base64,${source}`;
}

function show(schema, answer) {
  const prediction = answer.predictions[0];
  const explanation = answer.explanations[0];
  const positive = schema.classes[schema.classes.length - 1];
  const probability = prediction.probability ?? prediction.probabilities[prediction.decision];
  $("positive-class").textContent = prediction.probability === undefined ? prediction.decision : positive;
  $("probability").textContent = probability.toFixed(4);
  $("probability").setAttribute("data-value", String(probability));
  $("threshold").textContent = String(answer.threshold);
  $("decision").textContent = prediction.decision;
  $("explained").textContent = `${explanation.method}: contributions to the ${explanation.explained}`
    + (explanation.baseline ? `, against ${explanation.baseline}` : "");
  $("explanation").replaceChildren();
  if (explanation.heatmap) heatmap(explanation.heatmap);
  else bars(explanation.channel_totals || explanation.attributions);
  $("result").hidden = false;
}

async function submit(event) {
  if (event) event.preventDefault();
  const schema = state.schema;
  $("error").hidden = true;
  $("status").textContent = "working…";
  try {
    const answer = await call("/v1/explain", { [ITEM[schema.kind]]: readForm(schema) });
    show(schema, answer);
    $("status").textContent = "done";
  } catch (error) {
    $("error").textContent = error.message;
    $("error").hidden = false;
    $("status").textContent = "failed";
  }
}

async function start() {
  const params = new URLSearchParams(window.location.search);
  if (params.get("key")) $("api-key").value = params.get("key");
  try {
    state.schema = await call("/v1/schema");
  } catch (error) {
    $("error").textContent = `${error.message} (enter the API key and reload)`;
    $("error").hidden = false;
    $("status").textContent = "failed";
    return;
  }
  const schema = state.schema;
  $("task").textContent = `${schema.dataset}: ${schema.classes.join(" / ")}`;
  buildForm(schema);
  fill(schema, params);
  $("input-form").addEventListener("submit", submit);
  $("status").textContent = "ready";
  if (params.get("run") === "1") await submit();
}

start();
