// The accounts on this phone, in IndexedDB: each holds its CryptoKey objects themselves (the
// browser keeps them; being non-extractable, no script can read their secret halves).

const DB = "openmfa-authenticator";
const STORE = "accounts";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(mode, fn) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req ? req.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export const accounts = {
  all: () => run("readonly", (s) => s.getAll()),
  get: (id) => run("readonly", (s) => s.get(id)),
  put: (account) => run("readwrite", (s) => s.put(account)),
  remove: (id) => run("readwrite", (s) => s.delete(id)),
};

/** The next answer counter of an account, saved before it is used (never used twice: read,
 * counted up and written in one transaction, so two windows never take the same one). */
export async function nextCounter(id) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, "readwrite");
      const store = tx.objectStore(STORE);
      let counter = 0;
      const got = store.get(id);
      got.onsuccess = () => {
        const account = got.result;
        account.counter = (account.counter || 0) + 1;
        counter = account.counter;
        store.put(account);
      };
      tx.oncomplete = () => resolve(counter);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}
