// medq clinician page: vanilla ES2020, no build step, no third-party code.
// The API key lives in sessionStorage only (gone when the tab closes); patient text travels only in request
// bodies, never in a URL.
"use strict";

(() => {
  const KEY_STORAGE = "medq.apiKey";
  const POLL_MS = 1000;
  const TERMINAL = new Set(["succeeded", "failed", "canceled", "expired"]);
  const IMAGE_TYPES = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", dcm: "application/dicom",
                        dicom: "application/dicom" };
  const $ = (id) => document.getElementById(id);

  const state = { models: new Map(), file: null, previewUrl: null, pollToken: 0, lastStatus: "" };

  class ApiError extends Error {
    constructor(status, problem, retryAfter) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
      this.retryAfter = retryAfter;
    }
  }

  // ---- the API -------------------------------------------------------------------------------------------

  const apiKey = () => sessionStorage.getItem(KEY_STORAGE) || "";

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("Authorization", `Bearer ${apiKey()}`);
    headers.set("Accept", "application/json, application/problem+json");
    let response;
    try {
      // credentials: "omit" — the key is the only credential; no cookie is ever sent or needed.
      response = await fetch(path, { ...options, headers, cache: "no-store", credentials: "omit" });
    } catch (err) {
      throw new ApiError(0, { title: "Network error", detail: "The service could not be reached." }, null);
    }
    const type = response.headers.get("Content-Type") || "";
    const body = type.includes("json") ? await response.json().catch(() => null) : null;
    if (!response.ok) {
      const problem = body && typeof body === "object" ? body : { title: response.statusText || "Error" };
      throw new ApiError(response.status, problem, response.headers.get("Retry-After"));
    }
    return body;
  }

  // ---- messages ------------------------------------------------------------------------------------------

  function setStatus(text) {
    // Only real changes are written, so screen readers are not re-told the same status every second.
    if (text !== state.lastStatus) {
      $("status").textContent = text;
      state.lastStatus = text;
    }
  }

  function showError(err) {
    const box = $("error");
    box.replaceChildren();
    const problem = err instanceof ApiError ? err.problem : { title: "Error", detail: String(err.message || err) };
    const status = err instanceof ApiError && err.status ? ` (${err.status})` : "";
    const head = document.createElement("p");
    const strong = document.createElement("strong");
    strong.textContent = `${problem.title || "Error"}${status}`;
    head.append(strong, document.createTextNode(problem.detail ? `: ${problem.detail}` : ""));
    box.append(head);
    if (Array.isArray(problem.errors) && problem.errors.length) {
      const list = document.createElement("ul");
      for (const e of problem.errors) {
        const item = document.createElement("li");
        item.textContent = e.field ? `${e.field}: ${e.message}` : e.message;
        list.append(item);
      }
      box.append(list);
    }
    const hint = errorHint(err);
    if (hint) {
      const p = document.createElement("p");
      p.textContent = hint;
      box.append(p);
    }
    box.hidden = false;
  }

  function errorHint(err) {
    if (!(err instanceof ApiError)) return "";
    if (err.status === 401) return "Check the API key above and press “Use key” again.";
    if (err.status === 403) return "This key may not do that; ask for a key with the right scope.";
    if (err.status === 429 || err.status === 503) {
      return `The service is busy or unavailable; try again${err.retryAfter ? ` in ${err.retryAfter} s` : " shortly"}.`;
    }
    return "";
  }

  const clearError = () => { $("error").hidden = true; $("error").replaceChildren(); };

  // ---- key and models ------------------------------------------------------------------------------------

  async function useKey(event) {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) {
      showError(new Error("Enter an API key first."));
      $("api-key").focus();
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    await loadModels();
  }

  function forgetKey() {
    sessionStorage.removeItem(KEY_STORAGE);
    $("api-key").value = "";
    state.models.clear();
    $("model").replaceChildren();
    $("model").disabled = true;
    $("model-help").textContent = "Enter your API key to load the models.";
    $("model-card").hidden = true;
    setStatus("Key forgotten.");
  }

  async function loadModels() {
    clearError();
    $("model-help").textContent = "Loading models…";
    try {
      const body = await api("/v1/models");
      state.models = new Map(body.models.map((m) => [m.name, m]));
    } catch (err) {
      $("model-help").textContent = "Models could not be loaded.";
      showError(err);
      return;
    }
    const select = $("model");
    select.replaceChildren(...[...state.models.values()].map((m) => {
      const kind = m.task === "image-classification" ? "chest X-ray" : "clinical text";
      return new Option(`${m.name} ${m.version} — ${kind}`, m.name);
    }));
    select.disabled = state.models.size === 0;
    $("model-help").textContent = `${state.models.size} model(s) available.`;
    onModelChange();
  }

  function onModelChange() {
    const model = state.models.get($("model").value);
    const isImage = model?.task === "image-classification";
    $("text-input").hidden = isImage;
    $("image-input").hidden = !isImage;
    const card = $("model-card-body");
    card.replaceChildren();
    const facts = model ? [["Intended use", model.card?.intended_use], ["Labels", model.labels?.join(", ")],
                           ["Limitations", model.card?.limitations]] : [];
    for (const [term, text] of facts.filter(([, t]) => t)) {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = term;
      dd.textContent = text;
      card.append(dt, dd);
    }
    $("model-card").hidden = !model;
  }

  // ---- the image ----------------------------------------------------------------------------------------

  function mediaType(file) {
    if (["image/png", "image/jpeg", "application/dicom"].includes(file.type)) return file.type;
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    return IMAGE_TYPES[ext] || "";
  }

  function setFile(file) {
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.file = file || null;
    state.previewUrl = null;
    if (!file) {
      $("file-name").textContent = "";
      return;
    }
    const kind = mediaType(file);
    $("file-name").textContent = kind
      ? `Selected: ${file.name} (${Math.ceil(file.size / 1024)} KB)`
      : `${file.name} is not a PNG, JPEG or DICOM file.`;
    if (kind === "image/png" || kind === "image/jpeg") state.previewUrl = URL.createObjectURL(file);
  }

  function wireDropZone() {
    const zone = $("drop-zone");
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("dragging");
      const files = e.dataTransfer?.files;
      if (files && files.length) {
        try { $("image").files = files; } catch (_) { /* older browsers: keep our own reference only */ }
        setFile(files[0]);
      }
    });
    $("image").addEventListener("change", () => setFile($("image").files[0]));
  }

  // ---- submitting and polling ------------------------------------------------------------------------------

  function buildRequest(model) {
    const explain = $("explain").checked;
    const priority = $("priority").value;
    if (model.task === "image-classification") {
      if (!state.file || !mediaType(state.file)) return { invalid: "Choose a PNG, JPEG or DICOM image.", focus: "image" };
      const form = new FormData();
      form.append("model", model.name);
      form.append("priority", priority);
      form.append("explain", explain ? "true" : "false");
      form.append("media_type", mediaType(state.file));
      form.append("file", state.file, state.file.name);
      return { body: form, headers: {} };  // the browser sets the multipart boundary
    }
    const text = $("note").value;
    if (!text.trim()) return { invalid: "Paste or type a clinical note first.", focus: "note" };
    const body = JSON.stringify({ model: model.name, input: { text }, priority, explain });
    return { body, headers: { "Content-Type": "application/json" } };
  }

  async function submitJob(event) {
    event.preventDefault();
    clearError();
    const model = state.models.get($("model").value);
    if (!apiKey() || !model) {
      showError(new Error("Enter your API key and press “Use key” to load the models first."));
      $("api-key").focus();
      return;
    }
    const request = buildRequest(model);
    if (request.invalid) {
      showError(new Error(request.invalid));
      $(request.focus).focus();
      return;
    }
    const token = ++state.pollToken;  // a newer submission stops the older one's polling
    $("submit").disabled = true;
    $("result").hidden = true;
    setStatus("Submitting…");
    try {
      const job = await api("/v1/jobs", { method: "POST", body: request.body, headers: request.headers });
      await follow(job, token, state.previewUrl);
    } catch (err) {
      setStatus("The request failed.");
      showError(err);
    } finally {
      if (token === state.pollToken) $("submit").disabled = false;
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function follow(job, token, previewUrl) {
    let failures = 0;
    while (token === state.pollToken) {
      setStatus(describe(job));
      if (TERMINAL.has(job.status)) {
        showJob(job, previewUrl);
        return;
      }
      await sleep(POLL_MS);
      try {
        job = await api(`/v1/jobs/${encodeURIComponent(job.id)}`);
        failures = 0;
      } catch (err) {
        // A brief outage (network, 503, 429) is ridden out; anything else, or a long one, is shown.
        const transient = err.status === 0 || err.status === 503 || err.status === 429;
        if (!transient || ++failures >= 10) throw err;
      }
    }
  }

  function describe(job) {
    const ref = `Job ${job.id.slice(0, 8)}`;
    switch (job.status) {
      case "queued": {
        const pos = job.queue_position;
        const where = pos === 0 ? "next in line" : pos == null ? "waiting" : `${pos} ahead in the queue`;
        return `${ref}: queued — ${where} (queue position ${pos ?? "unknown"}).`;
      }
      case "running": return `${ref}: running…`;
      case "succeeded": return `${ref}: finished.`;
      case "failed": return `${ref}: failed — ${job.error?.detail || "no detail"}.`;
      case "canceled": return `${ref}: canceled.`;
      case "expired": return `${ref}: expired before it could start.`;
      default: return `${ref}: ${job.status}.`;
    }
  }

  // ---- the result (drawn by render.js) ------------------------------------------------------------------

  function showJob(job, previewUrl) {
    if (job.status === "succeeded" && job.result) {
      window.medqRender.showResult(job, previewUrl);
    } else if (job.status === "failed") {
      showError(new ApiError(0, { title: "The job failed", detail: job.error?.detail || job.error?.type }, null));
    }
  }

  // ---- start ---------------------------------------------------------------------------------------------

  function start() {
    $("key-form").addEventListener("submit", useKey);
    $("forget-key").addEventListener("click", forgetKey);
    $("model").addEventListener("change", onModelChange);
    $("job-form").addEventListener("submit", submitJob);
    $("opacity").addEventListener("input", window.medqRender.setOpacity);
    wireDropZone();
    const saved = apiKey();
    if (saved) {
      $("api-key").value = saved;
      loadModels();
    }
  }

  start();
})();
