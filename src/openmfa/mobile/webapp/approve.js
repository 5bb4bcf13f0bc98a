// One sign-in request on screen: who, which application, from where, when, how long it has
// left; the number typed on a large keypad; Approve, Deny, "This wasn't me". An answer is sent
// once: when nothing came back, the person is told and decides (a new answer has a new counter).

import { lang, t } from "./i18n.js";
import { answerBody, signed, unlockProof } from "./proto.js";
import { nextCounter } from "./store.js";
import { $, alertText, explain, hideAlert, post, say, show, timeOf } from "./ui.js";

let open = null; // {account, request} on screen
let ticker = null;
let onDone = () => {};
let onClosed = () => {};

export function opened() {
  return open ? open.request.id : null;
}

/** ``done``: back to the list; ``closed(id)``: a request is answered (or closed) for good. */
export function setup(done, closed) {
  onDone = done;
  onClosed = closed;
  for (const b of document.querySelectorAll(".keypad [data-digit]")) {
    b.addEventListener("click", () => {
      const input = $("number");
      if (b.dataset.digit === "back") input.value = input.value.slice(0, -1);
      else if (input.value.length < 8) input.value += b.dataset.digit;
      input.removeAttribute("aria-invalid");
    });
  }
  $("number").addEventListener("input", () => {
    $("number").value = $("number").value.replace(/\D/g, "").slice(0, 8);
  });
  $("number-form").addEventListener("submit", (e) => {
    e.preventDefault();
    answer("approve");
  });
  $("approve").addEventListener("click", () => answer("approve"));
  $("deny").addEventListener("click", () => answer("deny"));
  $("fraud").addEventListener("click", () => answer("fraud"));
  $("request-back").addEventListener("click", () => close());
  $("result-done").addEventListener("click", () => onDone());
}

function row(dl, term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  dl.append(dt, dd);
}

export function showRequest(account, request) {
  open = { account, request };
  const dl = $("request-context");
  dl.replaceChildren();
  row(dl, t("Account"), request.user);
  row(dl, t("Application"), request.client || t("unknown"));
  row(dl, t("From"), request.source || t("unknown"));
  row(dl, t("When"), timeOf(request.created_at, lang));
  $("number").value = "";
  $("number").removeAttribute("aria-invalid");
  $("number-form").hidden = !request.numbered;
  for (const id of ["approve", "deny", "fraud"]) $(id).disabled = false;
  show("view-request");
  tick();
  clearInterval(ticker);
  ticker = setInterval(tick, 1000);
  // The heading has the focus (show): focusing the number field would open the phone's own
  // keyboard over the app's keypad.
}

function tick() {
  if (!open) return;
  const left = Math.floor(open.request.expires_at - Date.now() / 1000);
  if (left <= 0) {
    result(t("Expired"), t("This request has expired. If you are signing in, start again."));
    return;
  }
  $("request-left").textContent = t("{seconds} seconds left", { seconds: left });
}

/** The request is gone from the server's list (answered elsewhere, or expired). */
export function vanished(id) {
  if (open && open.request.id === id && !$("view-request").hidden)
    result(t("No longer waiting"), t("This request was answered elsewhere or has expired."));
}

function close() {
  clearInterval(ticker);
  open = null;
  onDone();
}

function result(title, text) {
  clearInterval(ticker);
  const shown = open;
  open = null;
  $("result-title").textContent = title;
  $("result-text").textContent = text;
  show("view-result");
  say(text);
  return shown;
}

async function answer(decision) {
  if (!open) return;
  hideAlert();
  const { account, request } = open;
  const number = decision === "approve" ? $("number").value : "";
  if (decision === "approve" && request.numbered && !/^\d{1,8}$/.test(number)) {
    $("number").setAttribute("aria-invalid", "true");
    alertText(t("Type the number shown where you are signing in, then approve."));
    $("number").focus();
    return;
  }
  for (const id of ["approve", "deny", "fraud"]) $(id).disabled = true;
  try {
    let unlock = "";
    if (decision === "approve" && request.unlock) {
      if (!account.unlock) {
        alertText(t("This server wants approvals confirmed with the screen lock, and this phone was activated without it. Activate it again from the portal."));
        return;
      }
      try {
        unlock = await unlockProof(account.unlock.id, request.nonce);
      } catch {
        alertText(t("Your screen lock was not confirmed, so nothing was sent. Approve again and unlock when asked."));
        return;
      }
    }
    const counter = await nextCounter(account.id);
    const body = await signed(
      account.key.privateKey,
      answerBody(account.id, request, decision, number, counter),
    );
    if (unlock) body.unlock = unlock;
    let out;
    try {
      out = await post(account.service, "/v1/answer", body);
    } catch (e) {
      if (e.code === "unlock_refused") {
        alertText(t("The server did not accept the screen-lock confirmation; the sign-in is still waiting. Approve again and unlock when asked."));
      } else if (e.code === "unreachable") {
        alertText(t("The server could not be reached, so we do not know whether your answer arrived. Check your connection; if the sign-in still waits, answer again."));
      } else if (e.code === "push_closed") {
        onClosed(request.id);
        result(t("No longer waiting"), explain(e));
      } else {
        alertText(explain(e));
      }
      return;
    }
    onClosed(request.id); // not offered again before the next poll says it is gone
    if (decision === "approve" && out.status === "accepted") {
      result(t("Approved"), t("You are signed in. You can go back to where you were signing in."));
    } else if (decision === "approve") {
      result(
        t("Refused: the number did not match"),
        t("The number you typed is not the one shown where you sign in, so this sign-in was refused. If it was you, sign in again and type the number shown there."),
      );
    } else if (decision === "deny") {
      result(t("Denied"), t("Nobody was signed in."));
    } else {
      result(
        t("Reported"),
        t("Thank you. Nobody was signed in, your administrators were told, and push sign-ins for your account may stay blocked until your helpdesk checks it. Change your password soon."),
      );
    }
  } finally {
    for (const id of ["approve", "deny", "fraud"]) $(id).disabled = false;
  }
}
