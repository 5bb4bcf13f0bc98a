// The app's words, from the portal's catalogues (the mobile service serves them as
// strings/<lang>.json); English is the text itself.

const OFFERED = ["en", "nl"];
let words = {};
export let lang = "en";

export function choose(languages) {
  for (const tag of languages || []) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (OFFERED.includes(base)) return base;
  }
  return "en";
}

export async function load() {
  lang = choose(navigator.languages || [navigator.language]);
  document.documentElement.lang = lang;
  if (lang === "en") return;
  try {
    const r = await fetch(`strings/${lang}.json`);
    if (r.ok) words = await r.json();
  } catch {
    words = {};
  }
}

/** The text of a message, its {placeholders} filled in. */
export function t(text, values = {}) {
  const found = words[text] || text;
  return found.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));
}

/** Every element with data-t gets its text (data-t-label: its aria-label; data-t-placeholder). */
export function translate(root = document) {
  for (const el of root.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const el of root.querySelectorAll("[data-t-label]"))
    el.setAttribute("aria-label", t(el.dataset.tLabel));
}
