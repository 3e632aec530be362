// Signs and verifies Standard Webhooks signatures with the standardwebhooks npm package, for
// backend/protocol's interoperability test. Input: one JSON object on stdin.
//   {"op":"sign","secret":"<base64 key>","id":"…","timestamp":1700000000,"payload":"…"}
//     -> {"signature":"v1,…"}
//   {"op":"verify","secret":"<base64 key>","headers":{…},"payload":"…"}
//     -> {"ok":true} or {"ok":false,"error":"…"}
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const req = JSON.parse(input);
const wh = new Webhook(req.secret);
if (req.op === "sign") {
  const signature = wh.sign(req.id, new Date(req.timestamp * 1000), req.payload);
  process.stdout.write(JSON.stringify({ signature }));
} else if (req.op === "verify") {
  try {
    wh.verify(req.payload, req.headers, { jsonParse: false });
    process.stdout.write(JSON.stringify({ ok: true }));
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, error: String(e.message) }));
  }
} else {
  process.stderr.write(`unknown op ${req.op}\n`);
  process.exit(2);
}
