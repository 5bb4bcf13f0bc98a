// The OpenMFA Authenticator: boots, keeps one long-poll per account while open (no third party
// involved), lists what waits, shows the offline codes, and registers the service worker that
// keeps the shell offline and shows WebPush wake-ups while the app is closed.

import { load, t, translate } from "./i18n.js";
import { codeIn, activate, prepare, scan, stopScan } from "./activate.js";
import { opened, setup, showRequest, vanished } from "./approve.js";
import { pollBody, signed, totp } from "./proto.js";
import { accounts } from "./store.js";
import { $, current, post, say, show, sleep } from "./ui.js";

const waiting = new Map(); // request id -> {account, request}
const loops = new Map(); // account id -> AbortController
const trouble = new Map(); // account id -> a sentence shown on its card
const answered = new Set(); // request ids answered here: never listed again (a poll in flight)
let wanted = null; // a request to open once it is seen (a notification was tapped)
let unreachable = 0;
let stored = 0; // accounts on this phone (a refused one still shows, with why)

function home() {
  show(stored ? "view-home" : "view-welcome");
  render();
}

function render() {
  const list = $("requests");
  list.replaceChildren();
  const sorted = [...waiting.values()].sort((a, b) => a.request.created_at - b.request.created_at);
  for (const { account, request } of sorted) {
    const item = $("request-item").content.firstElementChild.cloneNode(true);
    item.dataset.request = request.id;
    item.querySelector(".who").textContent = request.user;
    item.querySelector(".what").textContent = t("Sign-in to {client}", {
      client: request.client || t("unknown"),
    });
    item.querySelector(".when").textContent = request.source
      ? t("from {source}", { source: request.source })
      : "";
    item.querySelector(".open").addEventListener("click", () => showRequest(account, request));
    list.append(item);
  }
  $("none-waiting").hidden = waiting.size > 0;
}

async function renderAccounts() {
  const list = $("accounts");
  list.replaceChildren();
  const all = await accounts.all();
  stored = all.length;
  for (const account of all) {
    const item = $("account-item").content.firstElementChild.cloneNode(true);
    translate(item);
    item.dataset.device = account.id;
    item.querySelector(".who").textContent = account.user;
    item.querySelector(".where").textContent = `${account.label} · ${new URL(account.service).host}`;
    const state = item.querySelector(".state");
    state.textContent = trouble.get(account.id) || "";
    state.hidden = !trouble.has(account.id);
    item.querySelector(".code").setAttribute("aria-live", "off");
    item.querySelector(".remove").addEventListener("click", async () => {
      if (!confirm(t("Remove {user} from this phone? Remove the phone in the portal too.", { user: account.user })))
        return;
      loops.get(account.id)?.abort();
      loops.delete(account.id);
      await accounts.remove(account.id);
      for (const [id, w] of waiting) if (w.account.id === account.id) waiting.delete(id);
      await renderAccounts();
      home();
    });
    list.append(item);
  }
  await codes();
}

async function codes() {
  const now = Date.now();
  for (const item of document.querySelectorAll("#accounts .account")) {
    const account = await accounts.get(item.dataset.device);
    if (!account) continue;
    const code = await totp(account.totp, account.digits, account.period, now);
    const out = item.querySelector(".code");
    if (out.textContent !== code) out.textContent = code;
    const left = account.period - (Math.floor(now / 1000) % account.period);
    item.querySelector(".ticks").textContent = t("({seconds} s)", { seconds: left });
  }
}

function merge(account, requests) {
  const seen = new Set();
  for (const request of requests) {
    if (answered.has(request.id)) continue;
    seen.add(request.id);
    if (!waiting.has(request.id)) {
      waiting.set(request.id, { account, request });
      say(t("New sign-in request for {user}.", { user: request.user }));
    }
  }
  for (const [id, w] of waiting) {
    if (w.account.id === account.id && !seen.has(id)) {
      waiting.delete(id);
      vanished(id);
    }
  }
  if (wanted && waiting.has(wanted) && current !== "view-request") {
    const w = waiting.get(wanted);
    wanted = null;
    showRequest(w.account, w.request);
  }
  if (current === "view-home") render();
}

function reachable(ok) {
  unreachable = ok ? 0 : unreachable + 1;
  const banner = $("offline");
  const down = !ok && unreachable >= 2;
  if (down && banner.hidden) {
    banner.textContent = t("The server cannot be reached. The app keeps trying; the offline codes still work.");
  }
  banner.hidden = !down;
}

async function pollLoop(account, controller) {
  let pause = 500;
  while (!controller.signal.aborted) {
    const mine = [...waiting.values()].some((w) => w.account.id === account.id);
    try {
      const body = await signed(account.key.privateKey, pollBody(account.id));
      const got = await post(account.service, `/v1/poll?wait=${mine ? 0 : 25}`, body, controller.signal);
      reachable(true);
      pause = 500;
      if (trouble.delete(account.id)) renderAccounts();
      merge(account, got.requests);
      if (got.requests.length) await sleep(1500); // what waits is on screen: look again soon
    } catch (e) {
      if (controller.signal.aborted) return;
      if (e.code === "device_clock") {
        // The phone's clock is wrong: nothing else is. Said on the card; polls go on slowly.
        trouble.set(account.id, t("This phone's clock is more than five minutes wrong, so the server cannot trust its messages. Set the date and time to automatic in the phone's settings."));
        renderAccounts();
        await sleep(10000);
        continue;
      }
      if (e.code === "device_refused") {
        trouble.set(account.id, t("This phone is no longer active for this account (it was removed or revoked). Activate it again from the portal."));
        merge(account, []);
        renderAccounts();
        loops.delete(account.id);
        return; // tried again when the app opens next
      }
      reachable(false);
      await sleep(pause);
      pause = Math.min(pause * 2, 10000);
    }
  }
}

function watch(account) {
  if (loops.has(account.id)) return;
  const controller = new AbortController();
  loops.set(account.id, controller);
  pollLoop(account, controller);
}

/** What the address asks for: an activation link (the code is in the fragment, never sent
 * anywhere) or a request a notification opened. Taken from the address at once, so a reload
 * does not offer it again; also when the app was already open (a link opened into it). */
function fromAddress() {
  const hash = location.hash;
  if (!hash.startsWith("#activate=") && !hash.startsWith("#request=")) return false;
  history.replaceState(null, "", location.pathname + location.search);
  if (hash.startsWith("#activate=")) {
    stopScan();
    prepare(codeIn(hash), true);
    show("view-activate");
    $("activate").focus();
    return true;
  }
  let id = "";
  try {
    id = decodeURIComponent(hash.slice(9));
  } catch {
    id = ""; // a broken link: the list, as on any open
  }
  const w = waiting.get(id);
  if (w) showRequest(w.account, w.request);
  else {
    wanted = id || null; // opened once the poll brings it
    home();
  }
  return true;
}

async function start() {
  await load();
  translate();
  setup(home, (id) => {
    answered.add(id);
    waiting.delete(id);
  });
  const mine = await accounts.all();
  for (const account of mine) watch(account);
  await renderAccounts();
  if (!fromAddress()) home();
  window.addEventListener("hashchange", fromAddress);
  setInterval(() => {
    if (!$("view-home").hidden) codes();
  }, 1000);
}

$("add-account").addEventListener("click", () => {
  prepare("", false);
  show("view-activate");
});
$("welcome-activate").addEventListener("click", () => {
  prepare("", false);
  show("view-activate");
});
$("activate-cancel").addEventListener("click", () => {
  stopScan();
  home();
});
$("scan").addEventListener("click", () =>
  scan((code) => {
    $("code").value = code;
    $("activate").focus();
  }),
);
$("scan-stop").addEventListener("click", stopScan);
$("activate-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const account = await activate();
  if (account) {
    watch(account);
    await renderAccounts();
    home();
  }
});
window.addEventListener("online", () => reachable(true));

// -- the service worker: the shell offline, wake-ups, and a new release's shell ---------------
if ("serviceWorker" in navigator) {
  const hadController = !!navigator.serviceWorker.controller;
  let reloading = false;
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    // A new release's shell took over: reload into it, unless the person is answering.
    if (hadController && !reloading && !opened() && current !== "view-activate") {
      reloading = true;
      location.reload();
    }
  });
  navigator.serviceWorker.addEventListener("message", (event) => {
    const data = event.data || {};
    if (data.type === "open-request" && typeof data.id === "string") {
      const w = waiting.get(data.id);
      if (w) showRequest(w.account, w.request);
      else wanted = data.id;
    }
  });
  navigator.serviceWorker.register("sw.js", { scope: "./" }).catch(() => {});
}

start();
