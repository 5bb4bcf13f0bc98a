// The User Portal's only script: it waits where a page waits for the phone (a push approval, the
// mobile app's activation) and moves on by itself. Every page works without it: each has a
// button that does the same.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]');
  const token = csrf ? csrf.getAttribute("content") : "";

  function status(text) {
    const live = document.getElementById("wait-status");
    if (live && text) { live.textContent = text; }
  }

  async function waitForPush(el) {
    const url = el.getAttribute("data-wait-url");
    for (let i = 0; i < 30; i++) {
      let answer;
      try {
        const r = await fetch(url, { method: "POST", headers: { "X-CSRF-Token": token },
                                     credentials: "same-origin" });
        answer = await r.json();
      } catch (e) {
        await new Promise((done) => setTimeout(done, 2000));
        continue;
      }
      if (answer.state === "approved" || answer.state === "gone") {
        window.location.assign(answer.next);
        return;
      }
      if (answer.state === "refused") {
        status(answer.message);
        return;
      }
    }
  }

  async function waitForActivation(el) {
    const url = el.getAttribute("data-status-url");
    for (let i = 0; i < 300; i++) {
      await new Promise((done) => setTimeout(done, 2000));
      try {
        const r = await fetch(url, { credentials: "same-origin" });
        const answer = await r.json();
        if (answer.activated) {
          window.location.assign(answer.next);
          return;
        }
      } catch (e) { /* the next try */ }
    }
  }

  // Passkeys: the browser's WebAuthn API makes or uses the credential; the form then carries
  // its answer (PublicKeyCredential.toJSON()) to the portal, which has the node check it.
  function passkey(form) {
    form.addEventListener("submit", async (event) => {
      const field = form.querySelector('input[name="credential"]');
      if (field.value) { return; }
      event.preventDefault();
      const shown = document.getElementById("passkey-status");
      try {
        const options = JSON.parse(form.getAttribute("data-options"));
        let credential;
        if (form.getAttribute("data-passkey") === "create") {
          credential = await navigator.credentials.create({
            publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
        } else {
          credential = await navigator.credentials.get({
            publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
        }
        field.value = JSON.stringify(credential.toJSON());
        form.submit();
      } catch (e) {
        if (shown) {
          shown.textContent = form.getAttribute("data-failed");
          shown.hidden = false;
        }
      }
    });
  }
  document.querySelectorAll("form[data-passkey]").forEach(passkey);

  const push = document.querySelector("[data-wait-url]");
  if (push) { waitForPush(push); }
  const activation = document.querySelector("[data-status-url]");
  if (activation) { waitForActivation(activation); }
})();
