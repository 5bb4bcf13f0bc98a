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
