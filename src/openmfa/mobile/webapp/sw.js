// The app's service worker: keeps this release's shell for offline opens (filled through the
// HTTP cache, revalidated: a file the page just loaded, or one a new release left unchanged,
// costs a 304), and shows a notification for a WebPush wake-up (which carries only a request
// id; the app fetches the request itself over its signed poll). The mobile service writes its
// version (the release and a hash of the app's files) into VERSION, so each release's worker
// differs and replaces the last one's shell at the next open; the keys live in IndexedDB,
// which a new shell does not touch.

const VERSION = "__OPENMFA_VERSION__";
const CACHE = "openmfa-app-" + VERSION;
const SHELL = [
  "./",
  "app.js",
  "activate.js",
  "approve.js",
  "i18n.js",
  "proto.js",
  "store.js",
  "ui.js",
  "app.css",
  "manifest.webmanifest",
  "icon.svg",
  "brand-logo",
  "icon-192.png",
  "icon-512.png",
  "strings/nl.json",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((u) => new Request(u, { cache: "no-cache" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) =>
        Promise.all(
          keys.filter((k) => k.startsWith("openmfa-app-") && k !== CACHE).map((k) => caches.delete(k)),
        ),
      )
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  const scope = new URL(self.registration.scope);
  if (url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return;
  // The shell: this release's copy (offline too); anything else under the scope: the network.
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const key = req.mode === "navigate" ? "./" : req;
      const hit = await cache.match(key, { ignoreSearch: req.mode === "navigate" });
      return hit || fetch(req);
    }),
  );
});

async function words() {
  const lang = (self.navigator.language || "en").toLowerCase().split("-")[0];
  if (lang !== "nl") return {};
  const cache = await caches.open(CACHE);
  const hit = await cache.match("strings/nl.json");
  return hit ? hit.json() : {};
}

self.addEventListener("push", (event) => {
  let id = "";
  try {
    const data = event.data ? event.data.json() : {};
    id = typeof data.request_id === "string" ? data.request_id : "";
  } catch {
    id = "";
  }
  event.waitUntil(
    (async () => {
      const w = await words();
      const t = (s) => w[s] || s;
      await self.registration.showNotification(t("Sign-in request"), {
        body: t("Open the app to approve or deny it."),
        tag: id || "openmfa",
        icon: "icon-192.png",
        badge: "icon-192.png",
        requireInteraction: true,
        data: { id },
      });
    })(),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const id = (event.notification.data && event.notification.data.id) || "";
  event.waitUntil(
    (async () => {
      const clients = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const c of clients) {
        if (new URL(c.url).pathname.startsWith(new URL(self.registration.scope).pathname)) {
          await c.focus();
          c.postMessage({ type: "open-request", id });
          return;
        }
      }
      await self.clients.openWindow("./" + (id ? "#request=" + encodeURIComponent(id) : ""));
    })(),
  );
});
