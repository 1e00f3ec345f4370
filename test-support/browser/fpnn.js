// FPNN over WebSocket for browser pages: a msgpack encoder and decoder, FPNN frames, and a
// client that sends quests, answers server pushes and reports the close. A classic script
// (no modules, no build step): it defines `Fpnn` on the global object.
//
//   const client = new Fpnn.Client('ws://127.0.0.1:13321/service/websocket');
//   client.on('ping', (params) => ({}));          // a push handler; its value is the answer
//   client.onclose = (event) => { ... };          // the WebSocket CloseEvent
//   await client.connect();
//   const answer = await client.quest('auth', {pid, uid, token, version: 'WebSocket_2.7.6'});
//
// Numbers: integers up to 2^53 are plain numbers; larger 64-bit integers are BigInts both
// ways. Strings are msgpack str (UTF-8), Uint8Arrays bin, null nil, arrays and plain
// objects arrays and maps. Floats are written as float64.
(function (global) {
  'use strict';

  // ---------------------------------------------------------------- msgpack

  const utf8Encoder = new TextEncoder();
  const utf8Decoder = new TextDecoder('utf-8');

  class Writer {
    constructor() {
      this.buf = new Uint8Array(64);
      this.view = new DataView(this.buf.buffer);
      this.len = 0;
    }
    reserve(n) {
      if (this.len + n <= this.buf.length) return;
      let size = this.buf.length * 2;
      while (size < this.len + n) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
    }
    u8(v) { this.reserve(1); this.view.setUint8(this.len, v); this.len += 1; }
    u16(v) { this.reserve(2); this.view.setUint16(this.len, v); this.len += 2; }
    u32(v) { this.reserve(4); this.view.setUint32(this.len, v); this.len += 4; }
    u64(v) { this.reserve(8); this.view.setBigUint64(this.len, BigInt.asUintN(64, v)); this.len += 8; }
    i64(v) { this.reserve(8); this.view.setBigInt64(this.len, BigInt.asIntN(64, v)); this.len += 8; }
    f64(v) { this.reserve(8); this.view.setFloat64(this.len, v); this.len += 8; }
    bytes(b) { this.reserve(b.length); this.buf.set(b, this.len); this.len += b.length; }
    result() { return this.buf.slice(0, this.len); }
  }

  function writeInt(w, v) {
    // v: a safe integer Number or a BigInt.
    const big = BigInt(v);
    if (big >= 0n) {
      if (big < 128n) w.u8(Number(big));
      else if (big < 256n) { w.u8(0xcc); w.u8(Number(big)); }
      else if (big < 65536n) { w.u8(0xcd); w.u16(Number(big)); }
      else if (big < 4294967296n) { w.u8(0xce); w.u32(Number(big)); }
      else if (big < 18446744073709551616n) { w.u8(0xcf); w.u64(big); }
      else throw new RangeError('integer too large for msgpack: ' + big);
    } else {
      if (big >= -32n) w.u8(Number(big) & 0xff);
      else if (big >= -128n) { w.u8(0xd0); w.u8(Number(big) & 0xff); }
      else if (big >= -32768n) { w.u8(0xd1); w.u16(Number(big) & 0xffff); }
      else if (big >= -2147483648n) { w.u8(0xd2); w.u32(Number(big) >>> 0); }
      else if (big >= -9223372036854775808n) { w.u8(0xd3); w.i64(big); }
      else throw new RangeError('integer too small for msgpack: ' + big);
    }
  }

  function writeLength(w, n, fix, fixMax, c8, c16, c32) {
    if (fix !== null && n <= fixMax) w.u8(fix | n);
    else if (c8 !== null && n < 256) { w.u8(c8); w.u8(n); }
    else if (n < 65536) { w.u8(c16); w.u16(n); }
    else { w.u8(c32); w.u32(n); }
  }

  function writeValue(w, v, depth) {
    if (depth > 64) throw new RangeError('msgpack value nested too deeply');
    if (v === null || v === undefined) w.u8(0xc0);
    else if (v === false) w.u8(0xc2);
    else if (v === true) w.u8(0xc3);
    else if (typeof v === 'bigint') writeInt(w, v);
    else if (typeof v === 'number') {
      if (Number.isSafeInteger(v)) writeInt(w, v);
      else { w.u8(0xcb); w.f64(v); }
    } else if (typeof v === 'string') {
      const b = utf8Encoder.encode(v);
      writeLength(w, b.length, 0xa0, 31, 0xd9, 0xda, 0xdb);
      w.bytes(b);
    } else if (v instanceof Uint8Array) {
      writeLength(w, v.length, null, 0, 0xc4, 0xc5, 0xc6);
      w.bytes(v);
    } else if (Array.isArray(v)) {
      writeLength(w, v.length, 0x90, 15, null, 0xdc, 0xdd);
      for (const item of v) writeValue(w, item, depth + 1);
    } else if (typeof v === 'object') {
      const keys = Object.keys(v);
      writeLength(w, keys.length, 0x80, 15, null, 0xde, 0xdf);
      for (const k of keys) { writeValue(w, k, depth + 1); writeValue(w, v[k], depth + 1); }
    } else {
      throw new TypeError('cannot encode a ' + typeof v + ' in msgpack');
    }
  }

  /** The msgpack bytes of `value`. */
  function encode(value) {
    const w = new Writer();
    writeValue(w, value, 0);
    return w.result();
  }

  class Reader {
    constructor(bytes) {
      this.bytes = bytes;
      this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      this.pos = 0;
    }
    need(n) {
      if (this.pos + n > this.bytes.length) throw new RangeError('msgpack: truncated input');
    }
    u8() { this.need(1); return this.view.getUint8(this.pos++); }
    u16() { this.need(2); const v = this.view.getUint16(this.pos); this.pos += 2; return v; }
    u32() { this.need(4); const v = this.view.getUint32(this.pos); this.pos += 4; return v; }
    take(n) { this.need(n); const b = this.bytes.subarray(this.pos, this.pos + n); this.pos += n; return b; }
    big(signed) {
      this.need(8);
      const v = signed ? this.view.getBigInt64(this.pos) : this.view.getBigUint64(this.pos);
      this.pos += 8;
      const n = Number(v);
      return Number.isSafeInteger(n) ? n : v;
    }
  }

  function readArray(r, n, depth) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(readValue(r, depth + 1));
    return out;
  }

  function readMap(r, n, depth) {
    const out = {};
    for (let i = 0; i < n; i++) {
      let k = readValue(r, depth + 1);
      if (k instanceof Uint8Array) k = utf8Decoder.decode(k);
      out[String(k)] = readValue(r, depth + 1);
    }
    return out;
  }

  function readValue(r, depth) {
    if (depth > 64) throw new RangeError('msgpack: nested too deeply');
    const b = r.u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 256;
    if ((b & 0xf0) === 0x80) return readMap(r, b & 0x0f, depth);
    if ((b & 0xf0) === 0x90) return readArray(r, b & 0x0f, depth);
    if ((b & 0xe0) === 0xa0) return utf8Decoder.decode(r.take(b & 0x1f));
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return r.take(r.u8()).slice();
      case 0xc5: return r.take(r.u16()).slice();
      case 0xc6: return r.take(r.u32()).slice();
      case 0xca: { r.need(4); const v = r.view.getFloat32(r.pos); r.pos += 4; return v; }
      case 0xcb: { r.need(8); const v = r.view.getFloat64(r.pos); r.pos += 8; return v; }
      case 0xcc: return r.u8();
      case 0xcd: return r.u16();
      case 0xce: return r.u32();
      case 0xcf: return r.big(false);
      case 0xd0: { const v = r.u8(); return v >= 128 ? v - 256 : v; }
      case 0xd1: { const v = r.u16(); return v >= 32768 ? v - 65536 : v; }
      case 0xd2: { r.need(4); const v = r.view.getInt32(r.pos); r.pos += 4; return v; }
      case 0xd3: return r.big(true);
      case 0xd9: return utf8Decoder.decode(r.take(r.u8()));
      case 0xda: return utf8Decoder.decode(r.take(r.u16()));
      case 0xdb: return utf8Decoder.decode(r.take(r.u32()));
      case 0xdc: return readArray(r, r.u16(), depth);
      case 0xdd: return readArray(r, r.u32(), depth);
      case 0xde: return readMap(r, r.u16(), depth);
      case 0xdf: return readMap(r, r.u32(), depth);
      default: throw new TypeError('msgpack: unsupported type byte 0x' + b.toString(16));
    }
  }

  /** The value of the msgpack bytes (which must hold exactly one value). */
  function decode(bytes) {
    const r = new Reader(bytes);
    const v = readValue(r, 0);
    if (r.pos !== bytes.length) throw new RangeError('msgpack: bytes after the value');
    return v;
  }

  // ---------------------------------------------------------------- FPNN frames

  const MAGIC = [0x46, 0x50, 0x4e, 0x4e]; // "FPNN"
  const FLAG_MSGPACK = 0x80;
  const FLAG_JSON = 0x40;
  const ONEWAY = 0, TWOWAY = 1, ANSWER = 2;

  function header(mtype, ss, payloadLen, bodyLen) {
    const frame = new Uint8Array(12 + bodyLen);
    frame.set(MAGIC, 0);
    frame[4] = 1; // version
    frame[5] = FLAG_MSGPACK;
    frame[6] = mtype;
    frame[7] = ss;
    new DataView(frame.buffer).setUint32(8, payloadLen, true);
    return frame;
  }

  /** A quest frame; `seq` null (or undefined) for a one-way quest. */
  function encodeQuest(method, seq, params) {
    const name = utf8Encoder.encode(method);
    if (name.length < 1 || name.length > 255) throw new RangeError('method name of 1..255 bytes');
    const payload = encode(params || {});
    const twoway = seq !== null && seq !== undefined;
    const seqLen = twoway ? 4 : 0;
    const frame = header(twoway ? TWOWAY : ONEWAY, name.length, payload.length,
      seqLen + name.length + payload.length);
    if (twoway) new DataView(frame.buffer).setUint32(12, seq >>> 0, true);
    frame.set(name, 12 + seqLen);
    frame.set(payload, 12 + seqLen + name.length);
    return frame;
  }

  /** An answer frame; `status` 0 for success, else an error answer with `body` {code, ex}. */
  function encodeAnswer(seq, body, status) {
    const payload = encode(body || {});
    const frame = header(ANSWER, status ? 1 : 0, payload.length, 4 + payload.length);
    new DataView(frame.buffer).setUint32(12, seq >>> 0, true);
    frame.set(payload, 16);
    return frame;
  }

  /**
   * One whole frame: {kind: 'quest', method, seq (null if one-way), params} or
   * {kind: 'answer', seq, status, body}.
   */
  function decodeFrame(bytes) {
    if (bytes.length < 12) throw new RangeError('FPNN: frame shorter than its header');
    for (let i = 0; i < 4; i++) if (bytes[i] !== MAGIC[i]) throw new TypeError('FPNN: bad magic');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const flag = bytes[5], mtype = bytes[6], ss = bytes[7];
    const psize = view.getUint32(8, true);
    const payloadOf = (start) => {
      if (start + psize !== bytes.length) throw new RangeError('FPNN: length mismatch');
      const p = bytes.subarray(start);
      if (flag === FLAG_JSON) return JSON.parse(utf8Decoder.decode(p));
      if (flag === FLAG_MSGPACK) return decode(p);
      throw new TypeError('FPNN: bad flag 0x' + flag.toString(16));
    };
    if (mtype === ANSWER) {
      return { kind: 'answer', seq: view.getUint32(12, true), status: ss, body: payloadOf(16) };
    }
    if (mtype !== ONEWAY && mtype !== TWOWAY) throw new TypeError('FPNN: bad message type');
    const twoway = mtype === TWOWAY;
    const start = twoway ? 16 : 12;
    const method = utf8Decoder.decode(bytes.subarray(start, start + ss));
    return {
      kind: 'quest',
      method,
      seq: twoway ? view.getUint32(12, true) : null,
      params: payloadOf(start + ss),
    };
  }

  // ---------------------------------------------------------------- client

  /** An error answer (or a local failure, with the FPNN code the SDKs use). */
  class FpnnError extends Error {
    constructor(code, ex) {
      super('FPNN error ' + code + ': ' + ex);
      this.code = code;
      this.ex = ex;
    }
  }

  class Client {
    /** `url`: ws:// or wss://, e.g. ws://host:port/service/websocket. */
    constructor(url, options) {
      this.url = url;
      this.timeoutMs = (options && options.timeoutMs) || 5000;
      this.nextSeq = 1;
      this.pending = new Map();
      this.handlers = new Map();
      this.ws = null;
      this.onclose = null;
    }

    /** Registers the handler of a pushed method; its return value (or promise) is the answer. */
    on(method, handler) {
      this.handlers.set(method, handler);
    }

    /** Opens the connection; resolves once it is open. */
    connect() {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(this.url);
        ws.binaryType = 'arraybuffer';
        this.ws = ws;
        let open = false;
        ws.onopen = () => { open = true; resolve(); };
        ws.onerror = () => { if (!open) reject(new FpnnError(20012, 'cannot connect to ' + this.url)); };
        ws.onmessage = (event) => this.receive(event.data);
        ws.onclose = (event) => {
          for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(new FpnnError(20002, 'connection closed')); }
          this.pending.clear();
          if (!open) reject(new FpnnError(20012, 'closed before it opened'));
          if (this.onclose) this.onclose(event);
        };
      });
    }

    /** A two-way quest: resolves with the answer's body, rejects with an FpnnError. */
    quest(method, params, timeoutMs) {
      const seq = this.nextSeq++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(seq);
          reject(new FpnnError(20003, 'no answer to ' + method + ' in time'));
        }, timeoutMs || this.timeoutMs);
        this.pending.set(seq, { resolve, reject, timer });
        this.send(encodeQuest(method, seq, params));
      });
    }

    /** A one-way quest. */
    oneway(method, params) {
      this.send(encodeQuest(method, null, params));
    }

    close() {
      if (this.ws) this.ws.close(1000);
    }

    send(frame) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new FpnnError(20012, 'not connected');
      this.ws.send(frame);
    }

    receive(data) {
      let frame;
      try {
        frame = decodeFrame(new Uint8Array(data));
      } catch (e) {
        // A corrupt stream cannot be trusted any more, as in every FPNN SDK.
        this.ws.close(1002);
        return;
      }
      if (frame.kind === 'answer') {
        const p = this.pending.get(frame.seq);
        if (!p) return; // late or unknown: dropped, as by the official SDKs
        this.pending.delete(frame.seq);
        clearTimeout(p.timer);
        if (frame.status === 0) p.resolve(frame.body);
        else p.reject(new FpnnError(frame.body && frame.body.code, frame.body && frame.body.ex));
        return;
      }
      this.push(frame);
    }

    async push(quest) {
      const handler = this.handlers.get(quest.method);
      let body = null, status = 0;
      if (!handler) {
        status = 1;
        body = { code: 20004, ex: 'unknown method ' + quest.method };
      } else {
        try {
          body = await handler(quest.params);
        } catch (e) {
          status = 1;
          body = { code: (e && e.code) || 20001, ex: String((e && e.message) || e) };
        }
      }
      // Never answer a one-way quest.
      if (quest.seq === null) return;
      try {
        this.send(encodeAnswer(quest.seq, body || {}, status));
      } catch (e) {
        // The connection went away meanwhile.
      }
    }
  }

  global.Fpnn = { encode, decode, encodeQuest, encodeAnswer, decodeFrame, Client, FpnnError };
})(typeof window !== 'undefined' ? window : globalThis);
