// The console's one script: a passkey sign-in. The browser's WebAuthn API uses the credential;
// the form then carries its answer (PublicKeyCredential.toJSON()) to the console, which has the
// node check it. Without this script the form says passkeys need it.
(() => {
  "use strict";
  document.querySelectorAll("form[data-passkey]").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      const field = form.querySelector('input[name="credential"]');
      if (field.value) { return; }
      event.preventDefault();
      const shown = document.getElementById("passkey-status");
      try {
        const options = JSON.parse(form.getAttribute("data-options"));
        const credential = await navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
        field.value = JSON.stringify(credential.toJSON());
        form.submit();
      } catch (e) {
        shown.textContent = form.getAttribute("data-failed");
        shown.hidden = false;
      }
    });
  });
})();

// The farm page renews its tables while its "Renew every 5 seconds" box is ticked (the operator
// can stop it: nothing moves on a page unasked). Without this script the page is as it was
// loaded, with a link to load it again.
(() => {
  "use strict";
  const box = document.getElementById("renew");
  const tables = document.getElementById("farm-tables");
  if (!box || !tables) { return; }
  box.disabled = false;
  const every = 1000 * Number(box.getAttribute("data-seconds"));
  setInterval(async () => {
    if (!box.checked || document.hidden) { return; }
    try {
      const page = await fetch(location.href, {
        credentials: "same-origin", headers: { "X-Console-Renew": "1" } });
      if (!page.ok) { return; }
      const doc = new DOMParser().parseFromString(await page.text(), "text/html");
      const fresh = doc.getElementById("farm-tables");
      if (fresh) { tables.replaceChildren(...fresh.childNodes); }
    } catch (e) { /* the console is restarting: the next turn tries again */ }
  }, every);
})();
