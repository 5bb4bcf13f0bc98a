// The device protocol (version 1) as the phone speaks it: canonical JSON (RFC 8785 for the
// protocol's objects: ASCII keys; strings, integers, booleans), ES256 keys made by WebCrypto as
// non-extractable, signed messages, the offline TOTP code, and the screen-lock proof (WebAuthn).
// The server side of every rule is openmfa.core.push; the README's "device protocol" says it.

export const PROTOCOL = 1;
const enc = new TextEncoder();

export function b64u(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = "";
  for (const b of u8) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function unb64u(text) {
  const s = text.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(s + "=".repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

export function canonical(obj) {
  const keys = Object.keys(obj).sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + JSON.stringify(obj[k])).join(",") + "}";
}

export function nonce() {
  return b64u(crypto.getRandomValues(new Uint8Array(16)));
}

/** A new device key: ECDSA P-256, its private half never extractable. */
export async function newKey() {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
    "sign",
    "verify",
  ]);
  const spki = await crypto.subtle.exportKey("spki", pair.publicKey);
  return { pair, publicKey: b64u(spki) };
}

/** {payload, signature} of a message body, as the mobile service takes it. */
export async function signed(privateKey, body) {
  const raw = enc.encode(canonical(body));
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, raw);
  return { payload: b64u(raw), signature: b64u(sig) };
}

export function pollBody(deviceId) {
  return {
    v: PROTOCOL,
    op: "poll",
    device_id: deviceId,
    ts: Math.floor(Date.now() / 1000),
    nonce: nonce(),
  };
}

export function answerBody(deviceId, request, decision, number, counter) {
  return {
    v: PROTOCOL,
    op: "answer",
    request_id: request.id,
    nonce: request.nonce,
    decision,
    number,
    device_id: deviceId,
    counter,
    ts: Math.floor(Date.now() / 1000),
  };
}

// -- the offline code (RFC 6238) --------------------------------------------------------------

function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, "").toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error("not base32");
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return new Uint8Array(out);
}

/** The TOTP seed given at activation, as a non-extractable HMAC key (the seed is not kept). */
export async function seedKey(secret, algorithm) {
  const hash = { SHA1: "SHA-1", SHA256: "SHA-256", SHA512: "SHA-512" }[algorithm] || "SHA-1";
  const raw = base32(secret);
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash }, false, ["sign"]);
  raw.fill(0);
  return key;
}

export async function totp(key, digits, period, now = Date.now()) {
  const step = Math.floor(now / 1000 / period);
  const msg = new DataView(new ArrayBuffer(8));
  msg.setUint32(0, Math.floor(step / 2 ** 32));
  msg.setUint32(4, step >>> 0);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, msg.buffer));
  const at = mac[mac.length - 1] & 15;
  const bin =
    ((mac[at] & 127) << 24) | (mac[at + 1] << 16) | (mac[at + 2] << 8) | mac[at + 3];
  return String(bin % 10 ** digits).padStart(digits, "0");
}

// -- the screen lock (WebAuthn, platform authenticator, user verified) ------------------------

export async function unlockAvailable() {
  return !!(
    window.PublicKeyCredential &&
    PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable &&
    (await PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable())
  );
}

export function normalizedCode(code) {
  return code.trim().toUpperCase().replace(/\s+/g, "");
}

/** A platform credential registered at activation; its JSON goes with the activation. */
export async function registerUnlock(code) {
  const challenge = await crypto.subtle.digest(
    "SHA-256",
    enc.encode("openmfa-unlock:" + normalizedCode(code)),
  );
  const cred = await navigator.credentials.create({
    publicKey: {
      rp: { id: location.hostname, name: "OpenMFA" },
      user: {
        id: crypto.getRandomValues(new Uint8Array(16)),
        name: "OpenMFA Authenticator",
        displayName: "OpenMFA Authenticator",
      },
      challenge,
      pubKeyCredParams: [{ type: "public-key", alg: -7 }],
      authenticatorSelection: {
        authenticatorAttachment: "platform",
        userVerification: "required",
        residentKey: "discouraged",
      },
      attestation: "none",
      timeout: 60000,
    },
  });
  const r = cred.response;
  return {
    id: cred.id,
    json: JSON.stringify({
      id: cred.id,
      rawId: b64u(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: b64u(r.clientDataJSON),
        attestationObject: b64u(r.attestationObject),
        transports: r.getTransports ? r.getTransports() : [],
      },
      clientExtensionResults: {},
      authenticatorAttachment: "platform",
    }),
  };
}

/** Proof that the screen lock was used, over the request's nonce. */
export async function unlockProof(credentialId, requestNonce) {
  const cred = await navigator.credentials.get({
    publicKey: {
      challenge: unb64u(requestNonce),
      rpId: location.hostname,
      allowCredentials: [{ type: "public-key", id: unb64u(credentialId) }],
      userVerification: "required",
      timeout: 60000,
    },
  });
  const r = cred.response;
  return JSON.stringify({
    id: cred.id,
    rawId: b64u(cred.rawId),
    type: cred.type,
    response: {
      clientDataJSON: b64u(r.clientDataJSON),
      authenticatorData: b64u(r.authenticatorData),
      signature: b64u(r.signature),
      userHandle: r.userHandle ? b64u(r.userHandle) : null,
    },
    clientExtensionResults: {},
    authenticatorAttachment: "platform",
  });
}
