// @realtime-service/client: the browser and Node client of realtime-service. It speaks the
// client protocol of docs/client-protocol.md and the cursor contract of docs/design.md,
// "Client frames": WebSocket (/v1/ws) with a fallback to Server-Sent Events (/v1/events), resume
// with "<cursor>~<id>,<id>,...", de-duplication on the event id, token refresh before exp.

/** Where the client keeps its resume position, {cursor, ids} as JSON, between page loads. */
export interface CursorStorage {
  get(key: string): string | null | undefined | Promise<string | null | undefined>;
  set(key: string, value: string): void | Promise<void>;
}

/** The part of the WHATWG WebSocket the client uses (browsers, Node 22+, npm ws). */
export interface WebSocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: globalThis.WebSocket, or npm ws's WebSocket on Node 18-21. */
export type WebSocketConstructor = new (url: string, protocols?: string[]) => WebSocketLike;

export type Transport = "websocket" | "sse";

/** connecting: an attempt runs; connected: frames flow; disconnected: waiting to reconnect;
 * closed: close() ran, or a close code said reconnecting is useless (1002, 1009, 4003). */
export type State = "connecting" | "connected" | "disconnected" | "closed";

export interface ClientOptions {
  /** The service's base URL, http(s)://host[:port][/prefix]; ws(s):// is derived from it. */
  url: string;
  /** Returns a client token (a JWT whose exp the client reads to refresh it before it passes).
   * Called before the first connection, before exp, and after a refused connection. */
  token: () => string | Promise<string>;
  /** Default: localStorage in a browser, memory elsewhere; null keeps nothing. */
  storage?: CursorStorage | null;
  /** Default "realtime:" + url. Use one key per user if a page switches users. */
  storageKey?: string;
  /** Tried in this order; default ["websocket", "sse"]. */
  transports?: Transport[];
  /** Default globalThis.WebSocket; pass npm ws's on Node 18-21. */
  WebSocket?: WebSocketConstructor;
  /** Default globalThis.fetch (the SSE transport reads the stream with it). */
  fetch?: typeof fetch;
  /** Backoff: the n-th retry waits a random time in [0, min(maxDelay, minDelay * 2^n)] ms
   * (full jitter). Defaults 500 and 30000. */
  minDelay?: number;
  maxDelay?: number;
  /** ms before the token's exp to refresh it, at most half its lifetime; default 30000. */
  refreshLead?: number;
  /** Event ids remembered for de-duplication; default 1000. */
  dedup?: number;
  /** ms of silence after which the client asks for a cursor frame (WebSocket), and twice that
   * after which it drops the connection and reconnects; default 30000. Keep it above the
   * server's REALTIME_PING_INTERVAL for SSE, whose heartbeats are the only frames of an idle stream. */
  heartbeat?: number;
}

/** What the client knows of an event besides its data. */
export interface EventMeta {
  /** "<topic>:<partition>:<offset>", unique per event. */
  id: string;
  event: string;
  /** The record's timestamp, RFC 3339. */
  time: string;
}

export interface Disconnected {
  /** The WebSocket close code (docs/client-protocol.md, "Close codes"), the code of an SSE
   * disconnect frame, the HTTP status of a refused SSE request, or 1006 for a dropped
   * connection; 1000 after close(). */
  code: number;
  reason: string;
  /** Whether the client reconnects by itself. */
  reconnect: boolean;
  transport?: Transport;
}

/** A resume the server could not honour (docs/client-protocol.md, "Resync"): reload what the
 * application shows from past events; the client continues from the new cursor. */
export interface Resync {
  reason: string;
  message?: string;
}

type Off = () => void;

export interface RealtimeClient {
  on(name: "resync", fn: (r: Resync) => void): Off;
  on(name: "state", fn: (s: State) => void): Off;
  on(name: "connecting", fn: (i: { transport: Transport; attempt: number }) => void): Off;
  on(name: "connected", fn: (i: { transport: Transport }) => void): Off;
  on(name: "disconnected", fn: (d: Disconnected) => void): Off;
  on(name: "cursor", fn: (cursor: string) => void): Off;
  on(name: "error", fn: (e: unknown) => void): Off;
  /** Every notification, whatever its name. */
  on(name: "*", fn: (data: any, meta: EventMeta) => void): Off;
  /** Notifications named `name`, each once, in order per partition. */
  on(name: string, fn: (data: any, meta: EventMeta) => void): Off;
  readonly state: State;
  readonly transport: Transport | undefined;
  /** The last cursor from the server ("" before the first). */
  readonly cursor: string;
  /** Closes the connection for good (code 1000); the stored cursor stays for the next client. */
  close(): void;
}

interface Frame {
  id: string;
  event: string;
  data: any;
  time: string;
  cursor?: string;
}

// Server close codes after which reconnecting cannot help: protocol error, message too big,
// token for another user (docs/client-protocol.md, "Close codes").
const FINAL = [1002, 1009, 4003];
// A resume token lists at most this many ids; past it, the last id of each partition (the
// server moves the cursor past it, docs/client-protocol.md, "Cursor": nothing is lost).
const MAX_IDS = 100;

/** Connects to realtime-service and keeps connected until close(). */
export function createClient(o: ClientOptions): RealtimeClient {
  const base = o.url.replace(/\/+$/, "");
  const transports: Transport[] = o.transports?.length ? o.transports : ["websocket", "sse"];
  const storage = o.storage === undefined ? localStore() : o.storage;
  const key = o.storageKey || "realtime:" + base;
  const minDelay = o.minDelay ?? 500;
  const maxDelay = o.maxDelay ?? 3e4;
  const lead = o.refreshLead ?? 3e4;
  const dedup = o.dedup ?? 1e3;
  const beat = o.heartbeat ?? 3e4;
  const fns: Record<string, Set<Function>> = {};
  const seen = new Set<string>();
  const worked: { [t: string]: boolean } = {};
  let cursor = "";
  let ids: string[] = [];
  let state: State = "disconnected";
  let tr: Transport | undefined;
  let closed = false;
  let attempt = 0; // backoff exponent
  let ti = 0; // index of the transport to try
  let fails = 0; // attempts of transports[ti] that failed before opening
  let stale = false; // fetch a new token before the next attempt
  let gen = 0; // the current attempt; callbacks of older ones are ignored
  let unavailable = 0; // resumes answered resync "unavailable" in a row
  let tok = "";
  let tokDue = 0; // ms epoch to refresh tok at; 0: never (no exp)
  let end: ((code: number, reason: string, reconnect?: boolean, delay?: number) => void) | undefined;
  let retryT: any, beatT: any, refreshT: any;

  const emit = (name: string, ...a: unknown[]) =>
    fns[name]?.forEach((f) => {
      try {
        f(...a);
      } catch (e) {
        if (name == "error") setTimeout(() => { throw e; });
        else emit("error", e);
      }
    });
  const setState = (s: State) => s != state && emit("state", (state = s));
  const save = () => {
    try {
      Promise.resolve(storage?.set(key, JSON.stringify({ cursor, ids }))).catch(() => {});
    } catch {}
  };
  const remember = (id: string) => {
    seen.add(id);
    if (seen.size > dedup) seen.delete(seen.values().next().value!);
  };
  const setCursor = (c?: string) => {
    if (!c) return;
    cursor = c;
    ids = [];
    save();
    emit("cursor", c);
  };

  async function token(fresh: boolean) {
    if (fresh || !tok || (tokDue && Date.now() >= tokDue)) {
      const t = await o.token();
      const now = Date.now();
      const exp = jwtExp(t);
      tok = t;
      tokDue = exp && exp - Math.min(lead, (exp - now) / 2);
    }
    return tok;
  }

  async function connect() {
    if (closed) return;
    const g = ++gen;
    const t = (tr = transports[ti % transports.length]);
    let opened = false;
    let info: { code?: number; reason?: string; reconnect?: boolean } = {};
    let conn: { send?(s: string): void; close(): void } | undefined;
    setState("connecting");
    emit("connecting", { transport: t, attempt });
    let jwt: string;
    try {
      jwt = await token(stale);
    } catch (e) {
      emit("error", e);
      if (g == gen) retry();
      return;
    }
    if (g != gen) return;
    let lastRx = Date.now();

    const done = (end = (code: number, reason: string, reconnect = true, delay?: number) => {
      if (g != gen) return;
      gen++;
      clearInterval(beatT);
      clearTimeout(refreshT);
      try {
        conn?.close();
      } catch {}
      // A transport that never opened is left after one failed attempt (WebSocket blocked on
      // the way: SSE next); one that worked after eight in a row (an outage of the server
      // fails every transport alike; the eighth comes some 30 s into it with the defaults).
      if (!opened) {
        stale = true;
        if (++fails >= (worked[t] ? 8 : 1)) ti++, (fails = 0);
      }
      if (code == 4001) stale = true;
      const again = reconnect && !closed && !FINAL.includes(code);
      if (!again) closed = true;
      setState(again ? "disconnected" : "closed");
      emit("disconnected", { code, reason, reconnect: again, transport: t });
      if (again) retry(delay);
    });
    const onOpen = () => {
      if (g != gen) return;
      opened = worked[t] = true;
      fails = 0;
      stale = false;
      setState("connected");
      emit("connected", { transport: t });
      schedule();
      beatT = setInterval(() => {
        const idle = Date.now() - lastRx;
        if (idle > 2 * beat) done(1006, "no frame for " + idle + " ms");
        else if (idle > beat) send('{"type":"cursor"}');
      }, beat / 2);
    };
    const send = (s: string) => {
      try {
        conn?.send?.(s);
      } catch {}
    };
    const schedule = (ms = tokDue - Date.now()) => {
      clearTimeout(refreshT);
      // At least 1 s apart: a token function that keeps returning the same token must not
      // make a refresh loop (the server closes the connection with 4001 at its exp).
      if (tokDue) refreshT = setTimeout(refresh, Math.max(1e3, ms));
    };
    const refresh = async () => {
      let t2: string;
      try {
        t2 = await token(true);
      } catch (e) {
        emit("error", e);
        return g == gen && schedule(5e3);
      }
      if (g != gen) return;
      // WebSocket: in place, answered by "refreshed" or "refresh-error"; SSE: reconnect now.
      if (conn?.send) send(JSON.stringify({ type: "refresh", token: t2 }));
      else done(1000, "token refresh", true, 0);
    };
    const onFrame = (f: Frame, sseId?: string) => {
      if (g != gen) return;
      lastRx = Date.now();
      if (f.id) {
        if (seen.has(f.id)) return;
        remember(f.id);
        ids.push(f.id);
        if (ids.length > MAX_IDS) {
          const last = new Map<string, string>();
          for (const id of ids) last.set(id.slice(0, id.lastIndexOf(":")), id);
          ids = [...last.values()];
        }
        const meta: EventMeta = { id: f.id, event: f.event, time: f.time };
        emit(f.event, f.data, meta);
        emit("*", f.data, meta);
        save(); // after the application had it: a reload before this line gets it again
        return;
      }
      const d = f.data || {};
      switch (f.event) {
        case "cursor":
          attempt = unavailable = 0;
          setCursor(f.cursor || sseId);
          break;
        case "resync":
          // "unavailable" is passing (a node starting, Kafka out of reach, the user's resumes
          // queued): keep the position and try again, three times, before accepting the gap.
          if (d.reason == "unavailable" && unavailable++ < 3) return done(1013, "resume unavailable: " + d.message);
          unavailable = 0;
          if (f.cursor || sseId) seen.clear(); // a new position: ids may start over (topic recreated)
          setCursor(f.cursor || sseId);
          emit("resync", d);
          break;
        case "refreshed":
          schedule();
          break;
        case "refresh-error":
          emit("error", new Error("token refresh refused: " + d.message));
          schedule(5e3);
          break;
        case "disconnect":
          info = d;
      }
    };

    const r = cursor && (ids.length ? cursor + "~" + ids.join(",") : cursor);
    if (t == "websocket") {
      const WS: WebSocketConstructor | undefined = o.WebSocket || (globalThis as any).WebSocket;
      if (!WS) return done(0, "no WebSocket: pass the WebSocket option");
      let ws: WebSocketLike;
      try {
        ws = new WS(base.replace(/^http/, "ws") + "/v1/ws" + (r ? "?cursor=" + encodeURIComponent(r) : ""), [
          "realtime.v1",
          "bearer." + jwt,
        ]);
      } catch (e) {
        return done(0, String(e));
      }
      conn = { send: (s) => ws.send(s), close: () => ws.close(1000) };
      ws.onopen = onOpen;
      ws.onmessage = (m) => {
        try {
          onFrame(JSON.parse(String(m.data)));
        } catch (e) {
          emit("error", e);
        }
      };
      ws.onclose = (e) => done(e.code, e.reason);
      ws.onerror = () => {};
    } else {
      const ac = new AbortController();
      conn = { close: () => ac.abort() };
      const q = "?access_token=" + encodeURIComponent(jwt) + (r ? "&lastEventId=" + encodeURIComponent(r) : "");
      try {
        const res = await (o.fetch || fetch)(base + "/v1/events" + q, {
          headers: { accept: "text/event-stream" },
          signal: ac.signal,
        });
        if (!res.ok || !res.body) return done(res.status, "HTTP " + res.status);
        onOpen();
        const rd = res.body.getReader();
        const dec = new TextDecoder();
        let buf = "", id = "", data = "";
        for (;;) {
          const { value, done: eof } = await rd.read();
          if (eof || g != gen) break;
          lastRx = Date.now();
          const lines = (buf += dec.decode(value, { stream: true })).split(/\r\n|\r|\n/);
          buf = lines.pop()!;
          for (const l of lines) {
            if (!l) {
              if (data) onFrame(JSON.parse(data), id);
              id = data = "";
            } else if (l.startsWith("data:")) data += (data && "\n") + l.slice(5).trim();
            else if (l.startsWith("id:")) id = l.slice(3).trim();
          }
        }
        done(info.code ?? 1006, info.reason ?? "stream ended", info.reconnect);
      } catch (e: any) {
        done(info.code ?? 1006, info.reason ?? String(e?.message ?? e), info.reconnect);
      }
    }
  }

  function retry(delay = Math.random() * Math.min(maxDelay, minDelay * 2 ** Math.min(attempt++, 30))) {
    clearTimeout(retryT);
    retryT = setTimeout(connect, delay);
  }

  Promise.resolve()
    .then(() => storage?.get(key))
    .then((v) => {
      if (!v) return;
      const s = JSON.parse(v);
      cursor = s.cursor || "";
      ids = s.ids || [];
      ids.forEach(remember);
    })
    .catch(() => {})
    .then(connect);

  return {
    on(name: string, fn: Function) {
      (fns[name] ||= new Set()).add(fn);
      return () => fns[name].delete(fn);
    },
    get state() {
      return state;
    },
    get transport() {
      return tr;
    },
    get cursor() {
      return cursor;
    },
    close() {
      if (state == "closed") return;
      closed = true;
      clearTimeout(retryT);
      const g0 = gen;
      end?.(1000, "closed by the client", false);
      if (gen == g0) {
        gen++;
        setState("closed");
        emit("disconnected", { code: 1000, reason: "closed by the client", reconnect: false, transport: tr });
      }
    },
  } as RealtimeClient;
}

/** The exp claim of a JWT in ms, 0 when it has none or is no JWT. */
function jwtExp(t: string): number {
  try {
    return JSON.parse(atob(t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).exp * 1e3 || 0;
  } catch {
    return 0;
  }
}

function localStore(): CursorStorage {
  try {
    const ls = (globalThis as any).localStorage;
    ls.getItem("");
    return { get: (k) => ls.getItem(k), set: (k, v) => ls.setItem(k, v) };
  } catch {
    const m = new Map<string, string>();
    return { get: (k) => m.get(k), set: (k, v) => void m.set(k, v) };
  }
}
