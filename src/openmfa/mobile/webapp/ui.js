// What every screen shares: finding elements, switching views, saying things (politely in the
// status region, urgently in the alert region), and calling the mobile service.

import { t } from "./i18n.js";

export const $ = (id) => document.getElementById(id);

/** Where this app's mobile service is: the app is served at {service}/app/. */
export const SERVICE = new URL("..", location.href).href.replace(/\/$/, "");

const VIEWS = ["loading", "view-home", "view-welcome", "view-activate", "view-request", "view-result"];
export let current = "loading";

export function show(view) {
  for (const id of VIEWS) $(id).hidden = id !== view;
  current = view;
  hideAlert();
  const heading = $(view).querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

export function say(text) {
  const status = $("status");
  status.textContent = "";
  // A fresh text node, so screen readers announce the same sentence twice in a row too.
  setTimeout(() => (status.textContent = text), 30);
}

export function alertText(text) {
  const box = $("alert");
  box.textContent = text;
  box.hidden = false;
}

export function hideAlert() {
  $("alert").hidden = true;
  $("alert").textContent = "";
}

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/** POST a JSON body to a mobile service; ApiError("unreachable") when nothing came back. */
export async function post(service, path, body, signal) {
  let r;
  try {
    r = await fetch(service + path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      signal,
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError("unreachable", String(e), 0);
  }
  let data = null;
  try {
    data = await r.json();
  } catch {
    data = null;
  }
  if (!r.ok) {
    const code = data && data.code ? data.code : r.status >= 500 ? "unavailable" : "refused";
    throw new ApiError(code, data && data.message ? data.message : r.statusText, r.status);
  }
  return data;
}

export async function info(service) {
  const r = await fetch(service + "/v1/info", { cache: "no-store", credentials: "omit" });
  if (!r.ok) throw new ApiError("unavailable", r.statusText, r.status);
  return r.json();
}

/** A sentence for an error of the service, in the person's language. */
export function explain(e) {
  switch (e.code) {
    case "unreachable":
      return t("The server could not be reached, so nothing was sent. Check your connection and try again.");
    case "unavailable":
      return t("The server is not answering right now. Try again in a moment.");
    case "push_closed":
      return t("This request was already answered or has expired. If you are signing in, start again.");
    case "device_refused":
      return t("The server no longer accepts this phone for this account. Activate it again from the portal.");
    case "device_clock":
      return t("This phone's clock is more than five minutes wrong, so the server cannot trust its messages. Set the date and time to automatic in the phone's settings.");
    case "unlock_refused":
      return t("The server did not accept the screen-lock confirmation, so nothing was done. Try again and unlock when asked.");
    case "conflict":
      return t("The server cannot do this for your account now (for example, it already has as many phones as allowed). Ask your helpdesk.");
    case "activation_refused":
      return t("This activation code cannot be used (it is wrong, used or expired). Ask the portal for a new one.");
    default:
      return t("The server refused this: {message}", { message: e.message || e.code });
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function timeOf(seconds, lang) {
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }).format(
    new Date(seconds * 1000),
  );
}
