// opencmr web viewer: plain JavaScript over the REST API (no build step, no CDN).
"use strict";

const MEASURES = [
  ["lv_edv_ml", "LV end-diastolic volume", "mL"], ["lv_esv_ml", "LV end-systolic volume", "mL"],
  ["lv_sv_ml", "LV stroke volume", "mL"], ["lv_ef_percent", "LV ejection fraction", "%"],
  ["lv_mass_g", "LV mass", "g"], ["max_wall_thickness_mm", "Max wall thickness (ED)", "mm"],
  ["rv_edv_ml", "RV end-diastolic volume", "mL"], ["rv_esv_ml", "RV end-systolic volume", "mL"],
  ["rv_sv_ml", "RV stroke volume", "mL"], ["rv_ef_percent", "RV ejection fraction", "%"],
  ["lv_co_l_min", "Cardiac output", "L/min"], ["bsa_m2", "Body-surface area", "m\u00b2"],
  ["lv_edv_ml_m2", "LV EDV index", "mL/m\u00b2"], ["lv_esv_ml_m2", "LV ESV index", "mL/m\u00b2"],
  ["lv_mass_g_m2", "LV mass index", "g/m\u00b2"], ["rv_edv_ml_m2", "RV EDV index", "mL/m\u00b2"],
];
const FILE_LABELS = {
  "report.html": "Report", "measurements.csv": "CSV", "segmentation.nii.gz": "Segmentation",
  "segmentation.dcm": "DICOM SEG", "volume_curve.png": "Volume curve",
};

const state = { selected: null, viewer: null, detail: null, token: sessionStorage.getItem("opencmr-token") || "",
                urls: {}, request: 0 };
const $ = (id) => document.getElementById(id);

function headers() { return state.token ? { Authorization: "Bearer " + state.token } : {}; }

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).detail || message; } catch (e) { /* not JSON */ }
    const error = new Error(message); error.status = response.status; throw error;
  }
  return response;
}

function text(el, value) { el.textContent = value == null ? "" : String(value); return el; }
function cell(row, value) { return text(row.insertCell(), value); }
function fmt(value) { return value == null || Number.isNaN(value) ? "\u2014" : Number(value).toFixed(1); }
function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }
function badge(el, value) { el.className = "badge " + (value || ""); text(el, value || "\u2014"); }

async function blobUrl(key, path) {
  const blob = await (await api(path)).blob();
  if (state.urls[key]) URL.revokeObjectURL(state.urls[key]);
  state.urls[key] = URL.createObjectURL(blob);
  return state.urls[key];
}

async function refreshList() {
  let jobs;
  try { jobs = await (await api("/studies")).json(); }
  catch (e) { text($("studies-empty"), e.status === 401 ? "Enter the token to list studies." : e.message); $("studies-empty").hidden = false; return; }
  const body = $("studies").tBodies[0];
  body.replaceChildren();
  $("studies-empty").hidden = jobs.length > 0;
  text($("studies-empty"), "No studies yet.");
  for (const job of jobs) {
    const row = body.insertRow();
    row.dataset.id = job.id;
    row.dataset.status = job.status;
    if (job.id === state.selected) row.classList.add("selected");
    cell(row, when(job.created));
    badge(row.insertCell().appendChild(document.createElement("span")), job.status);
    badge(row.insertCell().appendChild(document.createElement("span")), job.qc_verdict);
    cell(row, job.diagnosis_group || (job.status === "done" ? "\u2014" : ""));
    const del = document.createElement("button");
    del.className = "small"; del.title = "Delete"; del.textContent = "\u2715";
    del.addEventListener("click", async (event) => {
      event.stopPropagation();
      if (!confirm("Delete this study and its results?")) return;
      try { await api("/studies/" + job.id, { method: "DELETE" }); } catch (e) { alert(e.message); }
      if (state.selected === job.id) { state.selected = null; $("study").hidden = true; $("placeholder").hidden = false; }
      refreshList();
    });
    row.insertCell().appendChild(del);
    row.addEventListener("click", () => select(job.id));
  }
}

async function select(id) {
  state.selected = id; state.viewer = null; state.detail = null;
  for (const row of $("studies").tBodies[0].rows) row.classList.toggle("selected", row.dataset.id === id);
  $("placeholder").hidden = true; $("study").hidden = false;
  text($("study-id"), id.slice(0, 8));
  $("study-body").hidden = true; $("study-error").hidden = true; $("study-links").replaceChildren();
  await refreshStudy();
}

async function refreshStudy() {
  const id = state.selected;
  if (!id) return;
  let detail;
  try { detail = await (await api("/studies/" + id)).json(); } catch (e) { text($("study-error"), e.message); $("study-error").hidden = false; return; }
  if (id !== state.selected) return;
  badge($("study-status"), detail.status);
  if (detail.status === "failed") { text($("study-error"), "Analysis failed: " + detail.error); $("study-error").hidden = false; return; }
  if (detail.status !== "done" || state.detail) return;
  state.detail = detail;
  showLinks(id, detail.files);
  showResults(detail.results || {});
  state.viewer = await (await api("/studies/" + id + "/viewer")).json();
  const v = state.viewer;
  const frames = v.labelled_frames.length ? v.labelled_frames : [...Array(v.n_frames).keys()];
  state.frames = frames;
  $("slice-slider").max = v.n_slices - 1;
  $("slice-slider").value = Math.floor(v.n_slices / 2);
  $("frame-slider").max = frames.length - 1;
  $("frame-slider").value = Math.max(0, frames.indexOf(v.ed_index));
  const aspect = (v.rows * v.pixel_spacing_mm[0]) / (v.cols * v.pixel_spacing_mm[1]);
  $("stack").style.height = Math.round(384 * aspect) + "px";
  $("study-body").hidden = false;
  await draw();
}

function showLinks(id, files) {
  const links = $("study-links");
  links.replaceChildren();
  for (const name of Object.keys(FILE_LABELS)) {
    if (!files.includes(name)) continue;
    const a = document.createElement("a");
    a.href = "/studies/" + id + "/files/" + name; a.textContent = FILE_LABELS[name]; a.id = "link-" + name.replace(/\W/g, "-");
    a.addEventListener("click", async (event) => {  // fetch with the token, then open the file
      event.preventDefault();
      try { window.open(await blobUrl("file-" + name, a.getAttribute("href")), "_blank"); } catch (e) { alert(e.message); }
    });
    links.appendChild(a);
  }
}

function showResults(results) {
  const qc = results.qc || {};
  badge($("qc-verdict"), qc.verdict);
  const reasons = $("qc-reasons");
  reasons.replaceChildren();
  for (const reason of (qc.reasons && qc.reasons.length ? qc.reasons : ["no findings"])) text(reasons.appendChild(document.createElement("li")), reason);
  const d = results.diagnosis;
  if (!d) text($("diagnosis"), "No diagnosis (nothing measurable).");
  else if (d.group) {
    const p = d.probabilities && d.probabilities[d.group];
    text($("diagnosis"), d.group + (p != null ? " (probability " + (100 * p).toFixed(0) + "%)" : ""));
  } else text($("diagnosis"), "Not classified: " + (d.reason || "declined"));
  const body = $("measurements").tBodies[0];
  body.replaceChildren();
  const m = results.measurements;
  text($("measurements-note"), m ? "ED frame " + m.ed_frame + ", ES frame " + m.es_frame + " (0-based; " + m.ed_es_rule + ")" : "Nothing could be measured.");
  if (!m) return;
  for (const [key, label, unit] of MEASURES) {
    if (!(key in m)) continue;
    const row = body.insertRow(); row.dataset.key = key;
    cell(row, label); cell(row, fmt(m[key])).id = "m-" + key; cell(row, unit);
  }
}

async function draw() {
  const v = state.viewer;
  if (!v) return;
  const slice = Number($("slice-slider").value);
  const frame = state.frames[Number($("frame-slider").value)];
  const m = state.detail && state.detail.results && state.detail.results.measurements;
  const number = v.frame_numbers[frame];
  const ed = v.ed_index != null ? v.frame_numbers[v.ed_index] : m && m.ed_frame;
  const es = v.es_index != null ? v.frame_numbers[v.es_index] : m && m.es_frame;
  const tag = number === ed ? " (ED)" : number === es ? " (ES)" : "";
  text($("slice-value"), (slice + 1) + " / " + v.n_slices);
  text($("frame-value"), number + tag);
  const shown = [...document.querySelectorAll(".overlay-toggle")].filter((c) => c.checked).map((c) => c.value);
  const request = ++state.request;
  const base = "/studies/" + state.selected;
  const [image, overlay] = await Promise.all([
    blobUrl("image", base + "/slices/" + frame + "/" + slice + ".png"),
    shown.length ? blobUrl("overlay", base + "/overlays/" + frame + "/" + slice + ".png?labels=" + shown.join(",")) : null,
  ]);
  if (request !== state.request) return;  // a newer slider position won
  $("image-img").src = image;
  $("overlay-img").hidden = !overlay;
  if (overlay) $("overlay-img").src = overlay;
  $("stack").dataset.slice = slice; $("stack").dataset.frame = frame;
}

async function upload(event) {
  event.preventDefault();
  const form = $("upload-form");
  const data = new FormData(form);
  for (const [key, value] of [...data.entries()]) if (value === "") data.delete(key);
  $("upload-button").disabled = true;
  text($("upload-status"), "Uploading\u2026");
  try {
    const job = await (await api("/studies", { method: "POST", body: data })).json();
    text($("upload-status"), "Queued.");
    form.reset();
    await refreshList();
    await select(job.id);
  } catch (e) { text($("upload-status"), "Upload refused: " + e.message); }
  finally { $("upload-button").disabled = false; }
}

function init() {
  $("token").value = state.token;
  $("token").addEventListener("change", () => { state.token = $("token").value.trim(); sessionStorage.setItem("opencmr-token", state.token); refreshList(); });
  $("upload-form").addEventListener("submit", upload);
  for (const id of ["slice-slider", "frame-slider"]) $(id).addEventListener("input", draw);
  for (const box of document.querySelectorAll(".overlay-toggle")) box.addEventListener("change", draw);
  refreshList();
  setInterval(async () => {
    await refreshList();
    if (state.selected && !state.detail) await refreshStudy();
  }, 2000);
}

document.addEventListener("DOMContentLoaded", init);
