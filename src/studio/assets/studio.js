// opentime studio: the gallery (previews of every block for every sample, live reload) and
// the editor (preview as you type, checked saves, history). Plain JavaScript, no build step.
"use strict";

window.__studioErrors = [];
window.addEventListener("error", (event) => {
  window.__studioErrors.push(String(event.message || (event.target && event.target.src) || "error"));
}, true);
window.addEventListener("unhandledrejection", (event) => {
  window.__studioErrors.push(String(event.reason));
});

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

function element(tag, attributes, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children || []) node.append(child);
  return node;
}

function formatBytes(bytes) {
  return bytes >= 1000 ? (bytes / 1000).toFixed(1) + " KB" : bytes + " B";
}

// An error as the studio shows it: the message, and file:line:column with the offending line.
function errorBox(view) {
  const box = element("div", { className: "error-view" });
  if (view.place) {
    const place = view.place;
    box.append(element("div", { className: "error-place", text: `${place.file}:${place.line}:${place.column}` }));
    if (place.source_line) {
      const caret = " ".repeat(Math.max(0, place.column - 1)) + "^";
      box.append(element("pre", { className: "error-line", text: `${place.line} | ${place.source_line}\n${" ".repeat(String(place.line).length)} | ${caret}` }));
    }
  }
  box.append(element("div", { className: "error-message", text: view.message }));
  return box;
}

// At most this many renders at once, so the page stays responsive and the server is not flooded.
// `data-pending` on the body counts renders asked for and not finished.
const queue = { running: 0, waiting: [], pending: 0 };
function enqueue(task) {
  queue.pending++;
  document.body.dataset.pending = String(queue.pending);
  return new Promise((resolve) => {
    queue.waiting.push(async () => {
      try { resolve(await task()); } finally {
        queue.running--;
        queue.pending--;
        document.body.dataset.pending = String(queue.pending);
        pump();
      }
    });
    pump();
  });
}
function pump() {
  while (queue.running < 4 && queue.waiting.length) {
    queue.running++;
    queue.waiting.shift()();
  }
}

// ---------------------------------------------------------------- gallery

function gallery() {
  const switches = document.getElementById("switches");
  const contextEditor = document.getElementById("context-editor");
  const contextText = document.getElementById("context");
  const contextProblem = document.getElementById("context-problem");
  const live = document.getElementById("live");
  let generation = 0;

  function settings() {
    const form = new FormData(switches);
    return {
      sample: form.get("sample") || "",
      client: form.get("client") || "unknown",
      location: form.get("location") || "",
      scale: form.get("scale") || "1",
      at: form.get("at") || "",
    };
  }

  function editedContext() {
    try {
      const value = JSON.parse(contextText.value);
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("the context is a JSON object of fields");
      contextProblem.textContent = "";
      return JSON.stringify(value);
    } catch (error) {
      contextProblem.textContent = "Not used: " + error.message;
      return null;
    }
  }

  function cardsFor(block, campaign, chosen) {
    const samples = campaign.dataset.samples.split(" ").filter(Boolean);
    let subjects;
    if (chosen.sample === "__edited") subjects = ["edited"];
    else if (chosen.sample) subjects = samples.includes(chosen.sample) ? [chosen.sample] : [];
    else if (block.dataset.personal === "true") subjects = samples;
    else subjects = samples.slice(0, 1);
    const formats = block.dataset.extension === "html" ? ["html"] : [block.dataset.extension];
    if (block.dataset.html === "true" && block.dataset.extension !== "html") formats.push("html");
    const cards = [];
    for (const format of formats) for (const sample of subjects) cards.push({ format, sample });
    return cards;
  }

  // Redraws every card, or only those of the blocks named in `only` ("campaign/block").
  function renderAll(only) {
    const chosen = settings();
    contextEditor.hidden = chosen.sample !== "__edited";
    const body = chosen.sample === "__edited" ? editedContext() : null;
    const blocks = [];
    for (const campaign of document.querySelectorAll("section.campaign")) {
      for (const block of campaign.querySelectorAll("article.block")) blocks.push([campaign, block]);
    }
    const key = ([campaign, block]) => `${campaign.dataset.campaign}/${block.dataset.block}`;
    for (const [campaign, block] of blocks.filter((b) => !only || only.has(key(b)))) {
      {
        const list = block.querySelector(".cards");
        const wanted = cardsFor(block, campaign, chosen);
        const keys = wanted.map((c) => `${c.format}:${c.sample}`);
        for (const old of [...list.children]) if (!keys.includes(old.dataset.key)) old.remove();
        for (const card of wanted) {
          const key = `${card.format}:${card.sample}`;
          let figure = list.querySelector(`[data-key="${CSS.escape(key)}"]`);
          if (!figure) {
            figure = newCard(block, card, key);
            list.append(figure);
          }
          enqueue(() => renderCard(campaign.dataset.campaign, block, figure, card, chosen, body));
        }
        fallbackCard(campaign.dataset.campaign, block, list, chosen);
      }
    }
  }

  // An HTML fragment is laid out at the block's width, then shown scaled down to the card.
  function fragmentFrame(block, title) {
    const width = Number(block.dataset.width) || 600;
    const height = Number(block.dataset.height) || 300;
    const frame = element("iframe", { sandbox: "", title });
    frame.style.width = `${width}px`;
    frame.style.height = `${height}px`;
    frame.style.zoom = String(Math.min(1, 300 / width));
    return frame;
  }

  function newCard(block, card, key) {
    const frame = card.format === "html"
      ? fragmentFrame(block, `${block.dataset.block} as HTML for ${card.sample}`)
      : element("img", { alt: `${block.dataset.block} for ${card.sample}` });
    const figure = element("figure", { className: "card", role: "listitem", "data-key": key, "data-state": "loading" }, [
      element("div", { className: "frame" }, [frame]),
      element("figcaption", {}, [
        element("span", { className: "who", text: card.format === "html" ? `${card.sample} · HTML` : card.sample }),
        element("span", { className: "stats", text: "rendering…" }),
      ]),
      element("div", { className: "card-error", hidden: "" }),
    ]);
    return figure;
  }

  function fallbackCard(campaign, block, list, chosen) {
    let figure = list.querySelector('[data-key="fallback"]');
    const extension = block.dataset.extension;
    if (!figure) {
      const frame = extension === "html"
        ? fragmentFrame(block, `${block.dataset.block}'s fallback`)
        : element("img", { alt: `${block.dataset.block}'s fallback` });
      figure = element("figure", { className: "card fallback", role: "listitem", "data-key": "fallback", "data-state": "fallback" }, [
        element("div", { className: "frame" }, [frame]),
        element("figcaption", {}, [element("span", { className: "who", text: "fallback" }),
          element("span", { className: "stats", text: "what readers get when anything fails" })]),
      ]);
      list.append(figure);
    }
    const url = `/studio/fallback/${campaign}/${block.dataset.block}.${extension}?scale=${chosen.scale}&v=${generation}`;
    const frame = figure.querySelector("img, iframe");
    if (frame.tagName === "IFRAME") frame.src = url; else if (frame.getAttribute("src") !== url) frame.src = url;
  }

  async function renderCard(campaign, block, figure, card, chosen, body) {
    const query = new URLSearchParams({ client: chosen.client, scale: chosen.scale, v: String(generation) });
    if (card.sample !== "edited") query.set("sample", card.sample);
    if (chosen.location) query.set("location", chosen.location);
    if (chosen.at) query.set("at", chosen.at);
    const url = `/studio/render/${campaign}/${block.dataset.block}.${card.format}?${query}`;
    const options = body === null || body === undefined
      ? {}
      : { method: "POST", body, headers: { "X-Opentime-Csrf": csrf(), "Content-Type": "application/json" } };
    const stats = figure.querySelector(".stats");
    const problem = figure.querySelector(".card-error");
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      stats.textContent = "studio unreachable";
      return;
    }
    if (!response.ok) {
      const answer = await response.json().catch(() => ({ error: { message: response.statusText } }));
      problem.replaceChildren(element("strong", { text: "Render failed; readers get the fallback." }), errorBox(answer.error));
      problem.hidden = false;
      figure.dataset.state = "error";
      figure.classList.add("stale");
      stats.textContent = figure.dataset.good ? "last good render" : "no good render yet";
      return;
    }
    const blob = await response.blob();
    const state = response.headers.get("x-studio-state") || "rendered";
    const ms = response.headers.get("x-studio-render-ms");
    const frames = response.headers.get("x-studio-frames");
    const cap = Number(block.dataset.weightCap);
    const frame = figure.querySelector("img, iframe");
    if (frame.tagName === "IFRAME") {
      frame.srcdoc = await blob.text();
    } else {
      const previous = frame.src;
      frame.src = URL.createObjectURL(blob);
      try { await frame.decode(); } catch (error) { /* reported by the error listener */ }
      if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);
    }
    problem.hidden = true;
    figure.classList.remove("stale");
    figure.dataset.state = state;
    figure.dataset.good = "1";
    figure.dataset.frames = frames || "";
    figure.dataset.shownAt = String(Date.now());
    const parts = [state, `${ms} ms`, formatBytes(blob.size)];
    if (frames) parts.push(frames === "1" ? "1 frame" : `${frames} frames`);
    stats.textContent = parts.join(" · ");
    stats.classList.toggle("heavy", blob.size > cap);
    if (blob.size > cap) stats.textContent += ` · above the ${formatBytes(cap)} cap`;
  }

  function showRefused(campaigns) {
    for (const [name, state] of Object.entries(campaigns)) {
      const banner = document.querySelector(`[data-refused="${CSS.escape(name)}"]`);
      if (!banner) continue;
      if (state.refused) {
        banner.replaceChildren(element("strong", { text: "Change refused; the last good version still serves (and shows below):" }), errorBox(state.refused));
        banner.hidden = false;
      } else {
        banner.hidden = true;
        banner.replaceChildren();
      }
    }
  }

  // The blocks a reload changed: those whose own files or settings changed, or every block
  // of a campaign whose shared files (samples, included templates) changed.
  let fingerprints = {};
  function changedBlocks(campaigns) {
    const changed = new Set();
    const next = {};
    for (const [name, state] of Object.entries(campaigns)) {
      const shared = fingerprints[`${name}/`] !== state.shared;
      next[`${name}/`] = state.shared;
      for (const [block, fingerprint] of Object.entries(state.blocks || {})) {
        next[`${name}/${block}`] = fingerprint;
        if (shared || fingerprints[`${name}/${block}`] !== fingerprint) changed.add(`${name}/${block}`);
      }
    }
    fingerprints = next;
    return changed;
  }

  function listen() {
    const events = new EventSource("/studio/events");
    events.addEventListener("reload", (event) => {
      const state = JSON.parse(event.data);
      const first = generation === 0 && !live.dataset.connected;
      const changed = changedBlocks(state.campaigns);
      live.dataset.connected = "1";
      generation = state.generation;
      live.textContent = `Live: templates reloaded ${generation} time(s); last news at ${new Date().toLocaleTimeString()}`;
      document.body.dataset.generation = String(generation);
      document.body.dataset.reloadedAt = String(Date.now());
      showRefused(state.campaigns);
      if (!first) renderAll(changed);
    });
    events.onerror = () => { live.textContent = "Live reload disconnected; retrying…"; };
  }

  switches.addEventListener("change", (event) => {
    if (event.target.id === "dark") document.body.classList.toggle("dark", event.target.checked);
    else renderAll();
  });
  let typing;
  contextText.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(renderAll, 300); });

  document.addEventListener("click", (event) => {
    const ship = event.target.closest("button.ship");
    if (ship) {
      const panel = document.getElementById(ship.getAttribute("aria-controls"));
      panel.hidden = !panel.hidden;
      ship.setAttribute("aria-expanded", String(!panel.hidden));
    }
    const copy = event.target.closest("button.copy");
    if (copy) {
      const text = copy.closest(".snippet").querySelector("code").textContent;
      navigator.clipboard.writeText(text).then(() => { copy.textContent = "Copied"; }, () => { copy.textContent = "Select and copy"; });
    }
  });

  renderAll();
  listen();
}

// ---------------------------------------------------------------- editor

function editor() {
  const root = document.querySelector(".editor");
  const campaign = root.dataset.campaign;
  const file = root.dataset.file;
  const source = document.getElementById("source");
  const image = document.getElementById("preview-image");
  const status = document.getElementById("preview-status");
  const problem = document.getElementById("preview-error");
  const saveResult = document.getElementById("save-result");
  const history = document.getElementById("history");
  const diff = document.getElementById("diff");
  const blockSelect = document.getElementById("preview-block");
  const sampleSelect = document.getElementById("preview-sample");
  const clientSelect = document.getElementById("preview-client");
  const fileQuery = `file=${encodeURIComponent(file)}`;
  let latest = 0;

  async function preview() {
    const asked = ++latest;
    const option = blockSelect.selectedOptions[0];
    if (!option) { status.textContent = "This campaign has no block to preview."; return; }
    const query = new URLSearchParams({ file, block: option.value, sample: sampleSelect.value, client: clientSelect.value });
    status.textContent = "Rendering…";
    const response = await fetch(`/studio/api/preview/${campaign}?${query}`, {
      method: "POST", body: source.value, headers: { "X-Opentime-Csrf": csrf(), "Content-Type": "text/plain; charset=utf-8" },
    });
    if (asked !== latest) return;
    if (!response.ok) {
      const answer = await response.json().catch(() => ({ error: { message: response.statusText } }));
      problem.replaceChildren(element("strong", { text: "Not rendered (the image shows the last good render):" }), errorBox(answer.error));
      problem.hidden = false;
      image.classList.add("stale");
      status.textContent = "error";
      return;
    }
    const blob = await response.blob();
    const previous = image.src;
    image.src = URL.createObjectURL(blob);
    if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);
    image.classList.remove("stale");
    problem.hidden = true;
    const frames = response.headers.get("x-studio-frames");
    status.textContent = [response.headers.get("x-studio-state"), `${response.headers.get("x-studio-render-ms")} ms`, formatBytes(blob.size), frames ? `${frames} frames` : ""].filter(Boolean).join(" · ");
  }

  async function save() {
    saveResult.replaceChildren(element("span", { text: "Checking every block against every sample…" }));
    const response = await fetch(`/studio/api/save/${campaign}?${fileQuery}`, {
      method: "POST", body: source.value, headers: { "X-Opentime-Csrf": csrf(), "Content-Type": "text/plain; charset=utf-8" },
    });
    const answer = await response.json().catch(() => ({ problems: [{ message: `${response.status} ${response.statusText}` }] }));
    if (response.ok && answer.saved) {
      saveResult.className = "save-result saved";
      saveResult.replaceChildren(element("span", { text: `Saved at ${answer.version.saved_at} (${answer.checked} renders checked).` }));
      loadHistory();
    } else {
      saveResult.className = "save-result refused";
      const problems = answer.problems || [answer.error || { message: "refused" }];
      saveResult.replaceChildren(element("strong", { text: `Not saved: nothing was written. ${problems.length} problem(s):` }), ...problems.map(errorBox));
    }
  }

  async function loadHistory() {
    const response = await fetch(`/studio/api/history/${campaign}?${fileQuery}`);
    if (!response.ok) return;
    const { versions } = await response.json();
    history.replaceChildren(...versions.map((version) => {
      const compare = element("button", { type: "button", text: "Compare with now" });
      compare.addEventListener("click", async () => {
        const text = await (await fetch(`/studio/api/diff/${campaign}?${fileQuery}&id=${version.id}`)).text();
        diff.textContent = text || "No difference.";
        diff.hidden = false;
      });
      const restore = element("button", { type: "button", text: "Load into editor" });
      restore.addEventListener("click", async () => {
        source.value = await (await fetch(`/studio/api/version/${campaign}?${fileQuery}&id=${version.id}`)).text();
        saveResult.className = "save-result";
        saveResult.replaceChildren(element("span", { text: `Loaded the version of ${version.saved_at}: Save to restore it.` }));
        preview();
      });
      return element("li", {}, [element("span", { text: `${version.saved_at}${version.original ? " (before the first save)" : ""} · ${formatBytes(version.bytes)}` }), compare, restore]);
    }));
    if (!versions.length) history.replaceChildren(element("li", { text: "No saves yet." }));
  }

  let typing;
  source.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(preview, 250); });
  for (const select of [blockSelect, sampleSelect, clientSelect]) select.addEventListener("change", preview);
  document.getElementById("save").addEventListener("click", save);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") { event.preventDefault(); save(); }
  });
  source.addEventListener("keydown", (event) => {
    if (event.key === "Tab" && !event.shiftKey && !event.ctrlKey) {
      // Tab indents; Escape first, then Tab, leaves the text area (keyboard users are never trapped).
      if (source.dataset.escaped === "1") { source.dataset.escaped = ""; return; }
      event.preventDefault();
      source.setRangeText("  ", source.selectionStart, source.selectionEnd, "end");
      source.dispatchEvent(new Event("input"));
    } else if (event.key === "Escape") {
      source.dataset.escaped = "1";
    }
  });
  preview();
  loadHistory();
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "gallery") gallery();
  if (document.body.dataset.page === "editor") editor();
});
