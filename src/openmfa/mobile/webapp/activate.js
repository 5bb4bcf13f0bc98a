// Activation: from a link (the portal's QR code, `…/app/#activate=CODE`, opened by the phone's
// camera), or from inside the app (scan with the camera where the browser can read QR codes, or
// type the code). The device key is made here and never leaves; the offline-code seed becomes
// a non-extractable HMAC key; the screen-lock credential is registered when the server asks.

import { t } from "./i18n.js";
import { newKey, normalizedCode, registerUnlock, seedKey, unb64u } from "./proto.js";
import { accounts } from "./store.js";
import { $, SERVICE, alertText, explain, hideAlert, info, post, say } from "./ui.js";

let attempt = null; // the key pair and screen-lock credential of the activation under way
let needsUnlock = false;
let known = null; // the service's /v1/info, asked for when the screen opens

/** The code in what was typed or scanned: the code itself, or a link carrying it. */
export function codeIn(text) {
  const found = /#activate=([A-Za-z2-7 ]+)/.exec(text || "");
  return normalizedCode(found ? found[1] : text || "");
}

export function prepare(code, fromLink) {
  attempt = null;
  needsUnlock = false;
  known = null;
  info(SERVICE)
    .then((about) => (known = about))
    .catch(() => {}); // asked again at Activate
  $("code").value = code || "";
  $("activate-from-link").hidden = !fromLink;
  $("label").value = $("label").value || defaultLabel();
  $("scan").hidden = !("BarcodeDetector" in window && navigator.mediaDevices);
}

function defaultLabel() {
  const ua = navigator.userAgent;
  if (/iPhone/.test(ua)) return "iPhone";
  if (/iPad/.test(ua)) return "iPad";
  if (/Android/.test(ua)) return "Android";
  return t("This phone");
}

function bounded(promise, ms) {
  return Promise.race([
    promise,
    new Promise((resolve) => setTimeout(() => resolve(null), ms)),
  ]);
}

/** Where WebPush may wake this app (when the server offers it and the person allows it). */
async function subscription(about) {
  if (!about.webpush || !about.vapid_public_key) return null;
  if (!("PushManager" in window) || !navigator.serviceWorker || !window.Notification) return null;
  try {
    if ((await Notification.requestPermission()) !== "granted") return null;
    const reg = await bounded(navigator.serviceWorker.ready, 5000);
    if (!reg) return null;
    const sub = await bounded(
      reg.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: unb64u(about.vapid_public_key),
      }),
      8000,
    );
    if (!sub) return null;
    const j = sub.toJSON();
    return { endpoint: j.endpoint, p256dh: j.keys.p256dh, auth: j.keys.auth };
  } catch {
    return null; // no wake-ups: the app still gets requests whenever it is open
  }
}

/** Activate with what the form holds; the new account, or null (the alert says why). */
export async function activate() {
  hideAlert();
  const code = codeIn($("code").value);
  if (!/^[A-Z2-7]{8,64}$/.test(code)) {
    alertText(t("That is not an activation code. It has letters A–Z and digits 2–7, as the portal shows it."));
    $("code").setAttribute("aria-invalid", "true");
    $("code").focus();
    return null;
  }
  $("code").removeAttribute("aria-invalid");
  const button = $("activate");
  button.disabled = true;
  say(t("Activating…"));
  try {
    // The prompts first, straight from the tap: a phone's browser (Safari) shows the screen
    // lock's and the notifications' only there, not after a network call.
    if (needsUnlock && !(attempt && attempt.unlock)) {
      let unlock;
      try {
        unlock = await registerUnlock(code);
      } catch {
        alertText(t("The screen lock was not set up, so this phone was not activated. Press Activate and unlock when asked."));
        return null;
      }
      if (!attempt) attempt = { key: await newKey(), unlock: null };
      attempt.unlock = unlock;
    } else if (known && known.webpush && window.Notification && Notification.permission === "default") {
      await Notification.requestPermission().catch(() => "default");
    }
    let about = known;
    if (!about) {
      try {
        about = known = await info(SERVICE);
      } catch {
        throw Object.assign(new Error("unreachable"), { code: "unreachable" });
      }
    }
    if (!attempt) attempt = { key: await newKey(), unlock: null };
    const body = {
      code,
      alg: "ES256",
      public_key: attempt.key.publicKey,
      label: $("label").value.trim().slice(0, 60) || defaultLabel(),
    };
    const sub = await subscription(about);
    if (sub) body.webpush = sub;
    if (attempt.unlock) body.unlock = attempt.unlock.json;
    let done;
    try {
      done = await post(SERVICE, "/v1/activate", body);
    } catch (e) {
      if (e.code === "unlock_refused") {
        attempt.unlock = null; // the next Activate registers a new one
        needsUnlock = true;
      }
      if (e.code === "unlock_required") {
        needsUnlock = true;
        alertText(t("This server wants every approval confirmed with your phone's screen lock. Press Activate again and unlock when asked."));
        return null;
      }
      throw e;
    }
    const account = {
      id: done.device_id,
      service: SERVICE,
      user: done.user,
      label: done.label,
      alg: "ES256",
      key: attempt.key.pair,
      totp: await seedKey(done.totp_secret, done.algorithm),
      digits: done.digits,
      period: done.period,
      counter: 0,
      unlock: attempt.unlock ? { id: attempt.unlock.id } : null,
      webpush: !!sub,
      created: Date.now(),
    };
    await accounts.put(account);
    attempt = null;
    needsUnlock = false;
    $("code").value = "";
    say(t("This phone is now active for {user}.", { user: done.user }));
    return account;
  } catch (e) {
    alertText(explain(e));
    return null;
  } finally {
    button.disabled = false;
  }
}

// -- scanning inside the app (where the browser reads QR codes) --------------------------------

let scanning = null;

export async function scan(onCode) {
  try {
    const detector = new BarcodeDetector({ formats: ["qr_code"] });
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: "environment" },
    });
    const video = $("camera");
    video.srcObject = stream;
    $("scanner").hidden = false;
    await video.play();
    scanning = stream;
    while (scanning === stream) {
      const found = await detector.detect(video);
      const hit = found.find((c) => codeIn(c.rawValue).length >= 8);
      if (hit) {
        stopScan();
        onCode(codeIn(hit.rawValue));
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } catch {
    stopScan();
    alertText(t("The camera could not be used. Type the code instead."));
  }
}

export function stopScan() {
  if (scanning) for (const track of scanning.getTracks()) track.stop();
  scanning = null;
  $("scanner").hidden = true;
}
