// An RFC 8441 client on Node's own HTTP/2 stack (nghttp2): CONNECT through the proxy, TLS trusting
// only the CA given, h2, then -- once the server's SETTINGS allow it -- an extended CONNECT with
// :protocol websocket and WebSocket frames written and parsed here (Node has no h2 WebSocket).
// Usage: node h2ws_node_client.js PROXY_PORT ORIGIN_PORT CA_FILE
// Prints one JSON line: {status, messages: [[opcode, text or hex]...], close: code}.
"use strict";
const http = require("http");
const http2 = require("http2");
const tls = require("tls");
const fs = require("fs");
const crypto = require("crypto");

const [proxyPort, port, caFile] = process.argv.slice(2);
const authority = `localhost:${port}`;
setTimeout(() => { console.error("timed out"); process.exit(2); }, 20000).unref();

function frame(opcode, payload) {
  const mask = crypto.randomBytes(4);
  let head;
  if (payload.length < 126) {
    head = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
  } else {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode; head[1] = 0x80 | 126; head.writeUInt16BE(payload.length, 2);
  }
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
}

const result = { status: null, messages: [], close: null };
let buf = Buffer.alloc(0);

function parse(stream) {
  for (;;) {
    if (buf.length < 2) return;
    const opcode = buf[0] & 0x0f;
    let len = buf[1] & 0x7f, off = 2;
    if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
    if (buf.length < off + len) return;
    const payload = buf.subarray(off, off + len);
    buf = buf.subarray(off + len);
    if (opcode === 8) {
      result.close = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      stream.end();  // END_STREAM after the close reply: the WebSocket is done
      return;
    }
    result.messages.push([opcode, opcode === 1 ? payload.toString("utf8") : payload.toString("hex")]);
    if (result.messages.length === 1) {  // "welcome": talk
      stream.write(frame(1, Buffer.from("hello from node")));
      stream.write(frame(2, Buffer.from([1, 2, 3, 255])));
    } else if (result.messages.length === 3) {
      stream.write(frame(8, Buffer.from([0x0f, 0xa0])));  // close 4000
    }
  }
}

const req = http.request({ host: "127.0.0.1", port: proxyPort, method: "CONNECT", path: authority });
req.on("connect", (res, socket) => {
  if (res.statusCode !== 200) { console.error("CONNECT", res.statusCode); process.exit(1); }
  const tlsSocket = tls.connect({ socket, servername: "localhost", ALPNProtocols: ["h2"], ca: fs.readFileSync(caFile) });
  const client = http2.connect(`https://${authority}`, { createConnection: () => tlsSocket });
  client.on("error", (e) => { console.error("h2", e); process.exit(1); });
  let opened = false;
  client.on("remoteSettings", (settings) => {  // the setting may come in any SETTINGS frame
    if (!settings.enableConnectProtocol || opened) return;
    opened = true;
    const stream = client.request({
      ":method": "CONNECT", ":protocol": "websocket", ":scheme": "https", ":path": "/ws",
      ":authority": authority, "sec-websocket-version": "13", origin: "https://localhost",
    }, { endStream: false });
    stream.on("response", (headers) => { result.status = headers[":status"]; });
    stream.on("data", (d) => { buf = Buffer.concat([buf, d]); parse(stream); });
    stream.on("end", () => { console.log(JSON.stringify(result)); client.close(); tlsSocket.end(); });
    stream.on("error", (e) => { console.error("stream", e); process.exit(1); });
  });
});
req.on("error", (e) => { console.error("proxy", e); process.exit(1); });
req.end();
