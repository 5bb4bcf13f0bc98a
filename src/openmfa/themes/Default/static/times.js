// Times in the browser's own time zone: every <time datetime="…Z"> the portal renders (in UTC,
// which stays as the page's text without script) is written again with Intl.DateTimeFormat in
// the page's language and the browser's zone; the UTC moment stays in its title.
"use strict";
(function () {
  const lang = document.documentElement.lang || undefined;
  let format;
  try {
    format = new Intl.DateTimeFormat(lang, {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
    });
  } catch (e) {
    return; // no Intl: the UTC text stays
  }
  for (const el of document.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (isNaN(at.getTime())) { continue; }
    el.title = el.textContent;
    el.textContent = format.format(at);
  }
})();
