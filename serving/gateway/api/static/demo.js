// The demo page: the public API only (GET /v1/models, POST /v1/sentiment with explain).
"use strict";

// The tokenizer's words (text_contract/tokenizer.py): <br /> tags are separators, a word
// is a run of letters or digits, optionally joined by inner apostrophes.
const TOKENS = /<\s*br\s*\/?\s*>|[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*/giu;

const form = document.getElementById("review-form");
const review = document.getElementById("review");
const model = document.getElementById("model");
const submit = document.getElementById("submit");
const apiKey = document.getElementById("api-key");
const result = document.getElementById("result");
const errorBox = document.getElementById("error");

// The key stays in the page: it is sent with each call and kept nowhere else.
function headers(extra = {}) {
  const key = apiKey.value.trim();
  return key ? { ...extra, "X-API-Key": key } : extra;
}

async function loadModels() {
  try {
    const response = await fetch("/v1/models", { headers: headers() });
    if (!response.ok) return;
    const { models } = await response.json();
    model.replaceChildren(...models.map((m) => new Option(m.model, m.model)));
  } catch (_) {
    // keep the built-in choices; the prediction will report what is wrong
  }
}

function colour(effect) {
  const strength = Math.min(1, Math.abs(effect) * 8);  // 12.5 points of probability: full colour
  const [r, g, b] = effect >= 0 ? [30, 150, 60] : [200, 40, 40];
  return `rgba(${r}, ${g}, ${b}, ${(0.12 + 0.75 * strength).toFixed(2)})`;
}

function describe(effect) {
  return `${effect >= 0 ? "+" : ""}${(effect * 100).toFixed(1)} points`;
}

function colouredText(text, effects) {
  const parts = [];
  let last = 0;
  let position = 0;
  for (const match of text.matchAll(TOKENS)) {
    parts.push(document.createTextNode(text.slice(last, match.index)));
    last = match.index + match[0].length;
    if (match[0].startsWith("<")) {
      parts.push(document.createTextNode(" "));
      continue;
    }
    const span = document.createElement("span");
    span.textContent = match[0];
    const effect = effects.get(position);
    if (effect !== undefined) {
      span.className = "word";
      span.style.backgroundColor = colour(effect);
      span.title = describe(effect);
      span.dataset.effect = String(effect);
    }
    parts.push(span);
    position += 1;
  }
  parts.push(document.createTextNode(text.slice(last)));
  return parts;
}

function show(prediction, text) {
  const percent = (prediction.positive_probability * 100).toFixed(1);
  document.getElementById("verdict").textContent = prediction.no_known_words
    ? "No word of this text is known to the model: no verdict."
    : `${prediction.label === "positive" ? "Positive" : "Negative"}: ${percent}% positive`;
  document.getElementById("details").textContent =
    `${prediction.model_name}, version ${prediction.model_version}; ${prediction.num_tokens} words, ` +
    `${prediction.num_out_of_vocabulary} unknown to the model${prediction.truncated ? ", cut to the last 500" : ""}.`;
  const effects = new Map(prediction.explanation.map((w) => [w.position, w.effect]));
  document.getElementById("coloured").replaceChildren(...colouredText(text, effects));
  const rows = prediction.explanation.filter((w) => !w.out_of_vocabulary).slice(0, 10).map((w) => {
    const row = document.createElement("tr");
    const word = document.createElement("td");
    word.textContent = w.word;
    const effect = document.createElement("td");
    effect.textContent = describe(w.effect);
    row.append(word, effect);
    return row;
  });
  document.querySelector("#top-words tbody").replaceChildren(...rows);
  result.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = review.value;
  errorBox.hidden = true;
  submit.disabled = true;
  submit.textContent = "Scoring…";
  try {
    const response = await fetch("/v1/sentiment", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ text, model: model.value, explain: true, explain_top_k: 500 }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
    show(body.predictions[0], text);
  } catch (error) {
    result.hidden = true;
    errorBox.textContent = `Could not score the review: ${error.message}`;
    errorBox.hidden = false;
  } finally {
    submit.disabled = false;
    submit.textContent = "Score the review";
  }
});

apiKey.addEventListener("change", loadModels);
loadModels();
