// dermx page: upload an image, show the prediction, toggle explanation overlays.
"use strict";

const $ = (id) => document.getElementById(id);
let overlays = [];

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function bar(list, label, probability, cls) {
  const item = document.createElement("li");
  if (cls) item.className = cls;
  const fill = document.createElement("span");
  fill.className = "fill";
  fill.style.width = `${(probability * 100).toFixed(1)}%`;
  const name = document.createElement("span");
  name.textContent = label;
  const value = document.createElement("span");
  value.textContent = probability.toFixed(3);
  item.append(fill, name, value);
  list.append(item);
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

function render(result) {
  $("photo").onload = fitStages;
  $("photo").src = result.image;
  $("original").src = result.image;
  markInputArea(result.input_area);
  $("colorbar").src = result.colorbar;
  $("diagnoses").replaceChildren();
  for (const d of result.diagnoses) bar($("diagnoses"), d.name, d.probability);
  showTrust(result);
  $("characteristics").replaceChildren();
  const sorted = [...result.characteristics].sort((a, b) => b.probability - a.probability);
  for (const c of sorted) bar($("characteristics"), c.name, c.probability, c.present ? "present" : "absent");
  $("threshold").textContent = `(present from ${result.threshold})`;
  overlays = result.overlays;
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
  $("drop").classList.add("compact");
  $("result").hidden = false;
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
