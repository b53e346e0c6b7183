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
  const SPECIAL_TOKENS = new Set(["[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>"]);
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

  // ---- the result ----------------------------------------------------------------------------------------

  function showJob(job, previewUrl) {
    if (job.status !== "succeeded" || !job.result) {
      if (job.status === "failed") {
        showError(new ApiError(0, { title: "The job failed", detail: job.error?.detail || job.error?.type }, null));
      }
      return;
    }
    const result = job.result;
    const top = result.scores[0];
    $("result-label").textContent = result.label;
    $("result-prefix").textContent = result.indeterminate ? "Indeterminate — leaning towards:" : "Most likely:";
    $("indeterminate").hidden = !result.indeterminate;
    $("indeterminate-text").textContent = result.indeterminate
      ? `The model is not confident enough to suggest a label: its top probability (${pct(top.probability)} for ` +
        `“${top.label}”) lies in its abstain band. Do not rely on the label below.`
      : "";
    renderBars(result.scores);
    renderExplanation(result.explanation, previewUrl);
    $("result-meta").textContent = `Job ${job.id} · ${result.model} ${result.model_version} · weights sha256 ` +
      `${(result.model_sha256 || "").slice(0, 12)}… · finished ${job.finished_at}`;
    $("result").hidden = false;
    $("result-heading").focus({ preventScroll: false });
  }

  const pct = (p) => `${(p * 100).toFixed(1)} %`;

  function renderBars(scores) {
    $("scores").replaceChildren(...scores.map((score, i) => {
      const item = document.createElement("li");
      item.className = i === 0 ? "bar top" : "bar";
      const name = document.createElement("span");
      name.className = "bar-name";
      name.textContent = score.label;
      const track = document.createElement("span");
      track.className = "bar-track";
      track.setAttribute("aria-hidden", "true");  // the number beside it says the same to screen readers
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = `${Math.max(0, Math.min(1, score.probability)) * 100}%`;
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = pct(score.probability);
      item.append(name, track, value);
      return item;
    }));
  }

  function renderExplanation(explanation, previewUrl) {
    $("explanation").hidden = !explanation;
    $("text-explanation").hidden = true;
    $("image-explanation").hidden = true;
    if (!explanation) return;
    if (Array.isArray(explanation.tokens)) renderTokens(explanation);
    else if (explanation.heatmap_png_b64) renderHeatmap(explanation, previewUrl);
  }

  function joinWordPieces(tokens) {
    // "##" marks a continuation: "carcin", "##oma" is one word; it takes its strongest piece's weight.
    const words = [];
    for (const { token, weight } of tokens) {
      if (SPECIAL_TOKENS.has(token)) continue;
      const last = words[words.length - 1];
      if (token.startsWith("##") && last) {
        last.text += token.slice(2);
        if (Math.abs(weight) > Math.abs(last.weight)) last.weight = weight;
      } else {
        words.push({ text: token, weight });
      }
    }
    return words;
  }

  function renderTokens(explanation) {
    const words = joinWordPieces(explanation.tokens);
    const box = $("tokens");
    box.replaceChildren();
    words.forEach((word, i) => {
      // No space before punctuation, so the note reads as written.
      if (i > 0 && !/^[.,;:!?)\]%]$/.test(word.text)) box.append(document.createTextNode(" "));
      const span = document.createElement("span");
      span.className = `token ${word.weight >= 0 ? "pos" : "neg"}`;
      const alpha = Math.min(1, Math.abs(word.weight)) * 0.55;
      span.style.backgroundColor = `rgba(var(--${word.weight >= 0 ? "pos" : "neg"}), ${alpha.toFixed(3)})`;
      span.title = `weight ${word.weight.toFixed(2)}`;
      span.textContent = word.text;
      box.append(span);
    });
    const strongest = (sign) => words.filter((w) => sign * w.weight > 0.2)
      .sort((a, b) => sign * (b.weight - a.weight)).map((w) => w.text)
      .filter((text, i, all) => all.indexOf(text) === i).slice(0, 5);
    const towards = strongest(1);
    const against = strongest(-1);
    $("explanation-summary").textContent = `Integrated gradients towards “${explanation.target}”. ` +
      `Words that pushed towards it most: ${towards.join(", ") || "none"}. ` +
      `Words that pushed away: ${against.join(", ") || "none"}.`;
    $("text-explanation").hidden = false;
  }

  function colourize(src) {
    // The grey heatmap (white = important) becomes yellow-red with matching transparency, so unimportant
    // regions leave the X-ray visible instead of greying it over.
    return new Promise((resolve) => {
      const img = new Image();
      img.onload = () => {
        const canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const ctx = canvas.getContext("2d");
        ctx.drawImage(img, 0, 0);
        const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
        const d = pixels.data;
        for (let i = 0; i < d.length; i += 4) {
          const v = d[i] / 255;
          [d[i], d[i + 1], d[i + 2], d[i + 3]] = [255, Math.round(230 * v), 0, Math.round(255 * v)];
        }
        ctx.putImageData(pixels, 0, 0);
        resolve(canvas.toDataURL("image/png"));
      };
      img.onerror = () => resolve(src);  // show the grey original rather than nothing
      img.src = src;
    });
  }

  async function renderHeatmap(explanation, previewUrl) {
    const overlay = $("xray").parentElement;
    $("heatmap").src = await colourize(`data:image/png;base64,${explanation.heatmap_png_b64}`);
    $("xray").hidden = !previewUrl;
    if (previewUrl) $("xray").src = previewUrl;
    overlay.classList.toggle("heatmap-only", !previewUrl);
    setOpacity();
    $("explanation-summary").textContent = `Grad-CAM towards “${explanation.target}”: yellow regions mattered most ` +
      "to the result, red ones less, clear ones little.";
    $("image-note").textContent = previewUrl ? "Move the slider to fade the heatmap in or out."
      : "This browser cannot show DICOM images, so the heatmap is shown alone.";
    $("image-explanation").hidden = false;
  }

  function setOpacity() {
    const overlayed = !$("xray").hidden;
    $("heatmap").style.opacity = overlayed ? String(Number($("opacity").value) / 100) : "1";
  }

  // ---- start ---------------------------------------------------------------------------------------------

  function start() {
    $("key-form").addEventListener("submit", useKey);
    $("forget-key").addEventListener("click", forgetKey);
    $("model").addEventListener("change", onModelChange);
    $("job-form").addEventListener("submit", submitJob);
    $("opacity").addEventListener("input", setOpacity);
    wireDropZone();
    const saved = apiKey();
    if (saved) {
      $("api-key").value = saved;
      loadModels();
    }
  }

  start();
})();
