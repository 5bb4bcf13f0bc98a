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

  const push = document.querySelector("[data-wait-url]");
  if (push) { waitForPush(push); }
  const activation = document.querySelector("[data-status-url]");
  if (activation) { waitForActivation(activation); }
})();
