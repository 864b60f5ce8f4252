// dermx page: upload an image, show the prediction, toggle explanation overlays, set characteristics.
"use strict";

const $ = (id) => document.getElementById(id);
let overlays = [];
// the prediction interventions refer to: its id, its characteristics in the order first shown, the settings
// asked for, those of the answer on screen, and its characteristics' maps
let current = { id: null, order: [], settings: {}, shown: {}, characteristicMaps: [] };
let asked = 0; // the latest intervention asked: an older answer arriving late is not shown

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function bar(list, label, probability, cls, change) {
  const item = document.createElement("li");
  if (cls) item.className = cls;
  const fill = document.createElement("span");
  fill.className = "fill";
  fill.style.width = `${(probability * 100).toFixed(1)}%`;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = label;
  const value = document.createElement("span");
  value.className = "value";
  value.textContent = probability.toFixed(3);
  if (change !== undefined) {
    // an intervention: the change from the model's own answer
    const shown = Math.abs(change).toFixed(3);
    const sign = Number(shown) === 0 ? "\u00b1" : change > 0 ? "+" : "\u2212";
    const delta = document.createElement("span");
    delta.className = `change ${sign === "+" ? "up" : sign === "\u2212" ? "down" : ""}`;
    delta.textContent = ` (${sign}${shown})`;
    value.append(delta);
  }
  item.append(fill, name, value);
  list.append(item);
  return item;
}

function settingControl(name) {
  // three states: as the model sees it, or set present / absent by the clinician
  const group = document.createElement("span");
  group.className = "setting";
  group.setAttribute("role", "radiogroup");
  group.setAttribute("aria-label", `set ${name}`);
  for (const state of ["model", "present", "absent"]) {
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("role", "radio");
    button.dataset.state = state;
    button.textContent = state;
    button.setAttribute("aria-checked", String((current.settings[name] || "model") === state));
    button.addEventListener("click", () => setCharacteristic(name, state));
    group.append(button);
  }
  return group;
}

function showOverlay(target) {
  const chosen = overlays.find((o) => o.target === target);
  for (const button of $("overlays").children) {
    button.setAttribute("aria-checked", String(button.dataset.target === target && Boolean(chosen)));
  }
  $("overlay").hidden = !chosen;
  if (chosen) $("overlay").src = chosen.png;
  $("overlay-title").textContent = chosen ? chosen.title : "choose an explanation to overlay";
}

function markInputArea(area) {
  // where the image lies in the padded model input (null: nothing was padded)
  for (const outline of document.querySelectorAll(".input-area")) {
    outline.hidden = !area;
    if (!area) continue;
    const [top, left, height, width] = area.box;
    const [fullHeight, fullWidth] = area.size;
    Object.assign(outline.style, {
      top: `${(100 * top) / fullHeight}%`, left: `${(100 * left) / fullWidth}%`,
      height: `${(100 * height) / fullHeight}%`, width: `${(100 * width) / fullWidth}%`,
    });
  }
  $("padding-note").hidden = !area;
}

function fitStages() {
  // the picture's shape sizes both stages (style.css: at most half the window's height)
  const aspect = $("photo").naturalWidth / $("photo").naturalHeight;
  for (const stage of document.querySelectorAll(".stage")) stage.style.setProperty("--aspect", String(aspect));
}

function showTrust(result) {
  // the calibrated model's diagnosis set and abstention (an uncalibrated one says so)
  $("abstention").hidden = !result.abstain;
  $("abstention").textContent = result.abstain ? `No single diagnosis: ${result.reason}` : "";
  $("diagnosis-set").textContent = result.calibrated
    ? `Calibrated (T = ${result.temperature.toFixed(2)}). Diagnosis set (${Math.round(result.set_coverage * 100)}% `
      + `coverage): ${result.diagnosis_set.join(", ") || "empty"}. ${result.group_note}.`
    : `Uncalibrated probabilities: ${result.calibration_note}.`;
}

function showAnswer(result) {
  // a prediction, or an intervention on it (the image stays): diagnoses, trust, characteristics, maps
  // with no characteristic set (every control back to "model") this is the model's own answer again
  const setting = result.intervention && Object.keys(result.intervention.set).length ? result.intervention : null;
  const change = setting ? setting.change : {};
  $("diagnoses").replaceChildren();
  for (const d of result.diagnoses) bar($("diagnoses"), d.name, d.probability, "", change[d.name]);
  showTrust(result);
  $("characteristics").replaceChildren();
  const byName = Object.fromEntries(result.characteristics.map((c) => [c.name, c]));
  for (const name of current.order) {
    const c = byName[name];
    const set = current.settings[name];
    const item = bar($("characteristics"), c.name, c.probability, `${c.present ? "present" : "absent"}${set ? " set" : ""}`);
    if (current.id) item.append(settingControl(name));
  }
  $("intervention-note").hidden = !setting;
  $("intervention-note").textContent = setting
    ? `With ${Object.entries(setting.set).map(([n, v]) => `${n} ${v}`).join(", ")}; in brackets, the change from `
      + "the model's own answer." : "";
  // an intervention answers the top diagnosis's map; the characteristics' are the prediction's (not a set one's)
  const same = result.intervention
    ? current.characteristicMaps.filter((o) => !setting || !(o.name in setting.set)) : [];
  overlays = [...result.overlays, ...same];
  const toggles = $("overlays");
  toggles.replaceChildren();
  for (const o of overlays) {
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("role", "radio");
    button.dataset.target = o.target;
    button.textContent = `${o.head === "diagnosis" ? "Dx" : "Char"}: ${o.name}`;
    button.addEventListener("click", () => showOverlay(button.getAttribute("aria-checked") === "true" ? "" : o.target));
    toggles.append(button);
  }
  // the map is what the page is for: show the first (the top diagnosis's) at once
  showOverlay(overlays.length ? overlays[0].target : "");
  if (result.maps_note) $("overlay-title").textContent = `No map: ${result.maps_note}`;
}

function render(result) {
  $("photo").onload = fitStages;
  $("photo").src = result.image;
  $("original").src = result.image;
  markInputArea(result.input_area);
  $("colorbar").src = result.colorbar;
  const sorted = [...result.characteristics].sort((a, b) => b.probability - a.probability);
  current = {
    id: result.id, order: sorted.map((c) => c.name), settings: {}, shown: {},
    characteristicMaps: result.overlays.filter((o) => o.head === "characteristic"),
  };
  $("threshold").textContent = `(present from ${result.threshold})`;
  showAnswer(result);
  $("drop").classList.add("compact");
  $("result").hidden = false;
}

async function setCharacteristic(name, state) {
  // recompute the diagnosis from the kept prediction with the characteristics set (no upload)
  if (state === "model") delete current.settings[name];
  else current.settings[name] = state;
  const ticket = ++asked;
  const { id } = current;
  const sent = { ...current.settings };
  setStatus(`recomputing with ${name} ${state === "model" ? "as the model sees it" : state}…`);
  try {
    const response = await fetch(`/v1/predictions/${encodeURIComponent(id)}/intervene`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ set: sent }),
    });
    const payload = await response.json();
    if (!response.ok) throw new Error(payload.error || response.statusText);
    if (ticket !== asked || id !== current.id) return; // a newer setting or image was asked for since
    current.shown = sent;
    showAnswer(payload);
    setStatus(`${payload.source}: ${payload.abstain ? payload.reason : payload.diagnosis}`);
  } catch (error) {
    if (ticket !== asked || id !== current.id) return;
    current.settings = { ...current.shown }; // back to the setting of the answer on screen
    setStatus(`Could not set ${name}: ${error.message}`, true);
  }
}

async function upload(file) {
  if (!file) return;
  setStatus(`analysing ${file.name}…`);
  const body = new FormData();
  body.append("file", file);
  if ($("skin-tone").value) body.append("skin_tone", $("skin-tone").value);
  if ($("abstain-risk").value !== "") body.append("abstain_risk", $("abstain-risk").value);
  try {
    const response = await fetch("/v1/predict", { method: "POST", body });
    const payload = await response.json();
    if (!response.ok) throw new Error(payload.error || JSON.stringify(payload.detail) || response.statusText);
    render(payload);
    setStatus(`${payload.source}: ${payload.abstain ? payload.reason : payload.diagnosis}`);
  } catch (error) {
    setStatus(`Could not analyse ${file.name}: ${error.message}`, true);
  }
}

function showTrustControls(info) {
  // a calibrated model: its calibration groups to choose from, and the target risk of abstention
  $("trust").hidden = !info.calibration;
  if (!info.calibration) return;
  if (info.calibration.group_key) $("group-label").textContent = info.calibration.group_key.replace(/_/g, " ");
  for (const group of Object.keys(info.calibration.group_counts || {})) {
    const option = document.createElement("option");
    option.value = group;
    option.textContent = group;
    $("skin-tone").append(option);
  }
  if (info.abstain_risk !== null) $("abstain-risk").placeholder = `server default ${info.abstain_risk}`;
}

function setOpacity() {
  const value = $("opacity").value;
  $("overlay").style.opacity = String(value / 100);
  $("opacity-value").textContent = `${value}%`;
}

async function loadModel() {
  try {
    const info = await (await fetch("/v1/model")).json();
    const fingerprint = info.checkpoint ? ` · weights ${info.checkpoint.sha256.slice(0, 12)}` : "";
    $("model-line").textContent = `${info.kind} · ${info.backbone} · ${info.method}${fingerprint}`;
    showTrustControls(info);
  } catch {
    $("model-line").textContent = "model information unavailable";
  }
}

const drop = $("drop");
$("file").addEventListener("change", (event) => upload(event.target.files[0]));
$("opacity").addEventListener("input", setOpacity);
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  upload(event.dataTransfer.files[0]);
});
setOpacity();
loadModel();
