// Sends a form that carries a sign-in's answer back to where the sign-in came from (OAuth 2.0
// Form Post Response Mode). Without script the page's Continue button does the same.
"use strict";
(function () {
  const form = document.querySelector("form[data-autosubmit]");
  if (form) { form.submit(); }
})();
