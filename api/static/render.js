// medq clinician page, the result: probability bars, token highlights and the Grad-CAM heat map.
// Loaded before app.js (both deferred, so in order); app.js calls window.medqRender.showResult.

window.medqRender = (() => {
  const SPECIAL_TOKENS = new Set(["[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>"]);
  const $ = (id) => document.getElementById(id);

  function showResult(job, previewUrl) {
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

  return { showResult, setOpacity };
})();
