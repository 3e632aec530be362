package protocol_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// runInterop runs testdata/interop/interop.mjs (the standardwebhooks npm package) with req
// on stdin and decodes its answer into resp. Without Node.js or the installed package the test
// is skipped, except under CI=true where it fails: `make test` installs them with npm ci.
func runInterop(t *testing.T, req, resp any) {
	t.Helper()
	dir := filepath.Join("testdata", "interop")
	node, err := exec.LookPath("node")
	missing := err != nil
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil {
		missing = true
	}
	if missing {
		msg := "node or testdata/interop/node_modules missing: run `npm ci --prefix backend/protocol/testdata/interop`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	in, _ := json.Marshal(req)
	cmd := exec.Command(node, "interop.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("interop.mjs: %v: %s", err, stderr.String())
	}
	if err := json.Unmarshal(out, resp); err != nil {
		t.Fatalf("interop.mjs answered %q: %v", out, err)
	}
}

func TestInterop_StandardWebhooksVerifiesOurs(t *testing.T) {
	key := protocol.PairKey(protocol.ControlKey("platform-token-0123456789abcdefghij", "sync-token-0123456789abcdefghijklm"), 1, 2)
	body := []byte(`{"batch_id":"01JDINTEROP","source_platform_id":1,"sync_id":7,"changes":[{"title":"Grüße ✓"}]}`)
	h := protocol.Signer{}.SignData("01JDINTEROP", body, key)
	headers := map[string]string{"webhook-id": h.ID, "webhook-timestamp": h.Timestamp, "webhook-signature": h.Signature}

	var resp struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	runInterop(t, map[string]any{"op": "verify", "secret": protocol.EncodeKey(key), "headers": headers, "payload": string(body)}, &resp)
	if !resp.OK {
		t.Fatalf("standardwebhooks refused our signature: %s", resp.Error)
	}

	tampered := append(append([]byte{}, body[:len(body)-1]...), ' ', '}')
	runInterop(t, map[string]any{"op": "verify", "secret": protocol.EncodeKey(key), "headers": headers, "payload": string(tampered)}, &resp)
	if resp.OK {
		t.Fatal("standardwebhooks accepted a tampered body: the test cannot tell")
	}
}

func TestInterop_WeVerifyStandardWebhooks(t *testing.T) {
	key := protocol.PairKey([]byte("another-control-key-0123456789abcdef"), 3, 9)
	body := `{"batch_id":"msg_2","source_platform_id":3,"sync_id":1,"changes":[]}`
	now := time.Now().Unix()
	var resp struct {
		Signature string `json:"signature"`
	}
	runInterop(t, map[string]any{"op": "sign", "secret": protocol.EncodeKey(key), "id": "msg_2", "timestamp": now, "payload": body}, &resp)
	h := protocol.Headers{ID: "msg_2", Timestamp: strconv.FormatInt(now, 10), Signature: resp.Signature}
	if err := (protocol.Verifier{}).VerifyData(h, []byte(body), key); err != nil {
		t.Fatalf("we refused the standardwebhooks signature %q: %v", resp.Signature, err)
	}
	if err := (protocol.Verifier{}).VerifyData(h, []byte(body+" "), key); err == nil {
		t.Fatal("we accepted a tampered body")
	}
}
