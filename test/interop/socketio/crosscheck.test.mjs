// Cross-check of our Go codecs against the npm parsers the clients use (engine.io-parser 5.2.3,
// socket.io-parser 4.2.7): what our encoder produces, the npm decoders read as we meant it and
// the npm encoders reproduce byte for byte; what the npm encoders produce, our decoder reads.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { decodePayload, encodePayload } from "engine.io-parser";
import { Decoder, Encoder, PacketType } from "socket.io-parser";
import { URL, T } from "./helpers.mjs";

const EIO_TYPES = ["open", "close", "ping", "pong", "message", "upgrade", "noop"];

/** socket.io-parser: decode an encoded string plus its binary attachments. */
function sioDecode(encoded, buffers = []) {
  const decoder = new Decoder();
  let packet;
  decoder.on("decoded", (p) => (packet = p));
  decoder.add(encoded);
  for (const b of buffers) decoder.add(b);
  assert.ok(packet, `socket.io-parser did not complete ${encoded}`);
  return packet;
}

/** Replaces the Buffers in data by their placeholders (the inverse of reconstruction). */
function toPlaceholders(data, buffers) {
  if (Buffer.isBuffer(data)) return { _placeholder: true, num: buffers.findIndex((b) => b.equals(data)) };
  if (Array.isArray(data)) return data.map((d) => toPlaceholders(d, buffers));
  if (data && typeof data === "object") return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, toPlaceholders(v, buffers)]));
  return data;
}

const encodePayloadAsync = (packets) => new Promise((resolve) => encodePayload(packets, resolve));

describe("cross-check with the npm parsers", async () => {
  const table = await (await fetch(`${URL}/control/encode`)).json();

  test("socket.io-parser decodes every packet our encoder wrote, and re-encodes it identically", T, () => {
    assert.ok(table.sio.length >= 20);
    for (const c of table.sio) {
      const buffers = (c.buffers ?? []).map((b) => Buffer.from(b, "base64"));
      const got = sioDecode(c.encoded, buffers);
      const binary = c.packet.type === PacketType.BINARY_EVENT || c.packet.type === PacketType.BINARY_ACK;
      const wantType = binary ? c.packet.type - 3 : c.packet.type; // the decoder reports EVENT/ACK once reconstructed
      assert.equal(got.type, wantType, c.encoded);
      assert.equal(got.nsp, c.packet.nsp, c.encoded);
      assert.equal(got.id, c.packet.id, c.encoded);
      assert.deepEqual(binary ? toPlaceholders(got.data, buffers) : got.data, c.packet.data, c.encoded);
      const [again, ...attachments] = new Encoder().encode(got);
      assert.equal(again, c.encoded);
      assert.deepEqual(attachments, buffers);
    }
  });

  test("engine.io-parser decodes every payload our encoder wrote, and re-encodes it identically", T, async () => {
    for (const c of table.eio) {
      const got = decodePayload(c.encoded);
      const want = c.packets.map((p) => {
        const packet = { type: EIO_TYPES[p.type] };
        if (p.binary !== undefined) packet.data = Buffer.from(p.binary, "base64");
        else if (p.data !== undefined) packet.data = p.data;
        return packet;
      });
      assert.deepEqual(got, want, JSON.stringify(c.encoded));
      assert.equal(await encodePayloadAsync(got), c.encoded);
    }
  });

  test("our decoder reads what the npm encoders write", T, async () => {
    const sioPackets = [
      { type: PacketType.CONNECT, nsp: "/" },
      { type: PacketType.CONNECT, nsp: "/", data: { token: "abc", pid: "p", offset: "o" } },
      { type: PacketType.CONNECT, nsp: "/admin", data: { token: "é€😀" } },
      { type: PacketType.DISCONNECT, nsp: "/" },
      { type: PacketType.DISCONNECT, nsp: "/admin" },
      { type: PacketType.EVENT, nsp: "/", data: ["whoami"] },
      { type: PacketType.EVENT, nsp: "/", id: 1, data: ["whoami", { a: [1, 2.5, null, true, "\u2028"] }] },
      { type: PacketType.EVENT, nsp: "/admin", id: 9007199254740991, data: ["x"] },
      { type: PacketType.EVENT, nsp: "/", id: 0, data: [7] },
      { type: PacketType.ACK, nsp: "/", id: 3, data: [] },
      { type: PacketType.ACK, nsp: "/admin", id: 4, data: ["bar", { b: 1 }] },
      { type: PacketType.CONNECT_ERROR, nsp: "/", data: { message: "no" } },
      { type: PacketType.CONNECT_ERROR, nsp: "/", data: "legacy string" },
      { type: PacketType.EVENT, nsp: "/", id: 5, data: ["bin", Buffer.from([1, 2]), { deep: [Buffer.from([3])] }] },
      { type: PacketType.ACK, nsp: "/admin", id: 6, data: [Buffer.from([4])] },
    ];
    const encoded = sioPackets.map((p) => new Encoder().encode(p));
    const eioPayloads = [
      [{ type: "message", data: "hello" }, { type: "ping" }, { type: "message", data: "world" }],
      [{ type: "message", data: Buffer.from([1, 2, 3, 4]) }, { type: "message", data: "é€😀" }],
      [{ type: "pong", data: "probe" }, { type: "upgrade" }, { type: "noop" }, { type: "close" }],
      [{ type: "pong" }],
    ];
    const res = await fetch(`${URL}/control/decode`, {
      method: "POST",
      body: JSON.stringify({ sio: encoded.map((e) => e[0]), eio: await Promise.all(eioPayloads.map(encodePayloadAsync)) }),
    });
    const got = await res.json();
    sioPackets.forEach((p, i) => {
      const g = got.sio[i];
      const buffers = encoded[i].slice(1);
      assert.equal(g.error, undefined, encoded[i][0]);
      assert.equal(g.type, buffers.length ? p.type + 3 : p.type, encoded[i][0]);
      assert.equal(g.nsp, p.nsp);
      assert.equal(g.id, p.id);
      assert.equal(g.attachments, buffers.length || undefined);
      assert.deepEqual(g.data, p.data === undefined ? undefined : toPlaceholders(p.data, buffers));
    });
    eioPayloads.forEach((packets, i) => {
      assert.deepEqual(
        got.eio[i],
        packets.map((p) => {
          const out = { type: EIO_TYPES.indexOf(p.type) };
          if (Buffer.isBuffer(p.data)) out.binary = p.data.toString("base64");
          else if (p.data !== undefined) out.data = p.data;
          return out;
        }),
      );
    });
  });
});
