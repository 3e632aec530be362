package deliver

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/mooxsync/mooxsync/backend/capture"
	"github.com/mooxsync/mooxsync/backend/protocol"
)

// bodyPool recycles batch bodies: encoding is the hot path of delivery.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 256<<10); return &b }}

func getBody() *[]byte {
	b := bodyPool.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

func putBody(b *[]byte) {
	if b != nil && cap(*b) <= 8<<20 {
		bodyPool.Put(b)
	}
}

// encoder writes the JSON body of a batch (PROTOCOL.md section 7) by appending to a byte
// slice: the row images go in as stored in the queue, never decoded and encoded again.
type encoder struct {
	model      []byte // the model name as a JSON string
	keys       keyFinder
	fieldsJSON [][]byte // the unique identifier fields as JSON strings
	source     int64    // this platform
	syncID     int64
	target     int64 // changes that came from here are not sent back

	lastSec int64  // the second secText formats
	secText []byte // "2006-01-02T15:04:05" of lastSec
}

func newEncoder(model string, fields []string, source, syncID, target int64) *encoder {
	e := &encoder{model: jsonString(model), keys: newKeyFinder(fields), source: source, syncID: syncID, target: target}
	for _, f := range fields {
		e.fieldsJSON = append(e.fieldsJSON, jsonString(f))
	}
	return e
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

// begin starts a batch body.
func (e *encoder) begin(b []byte, batchID string) []byte {
	b = append(b, `{"batch_id":"`...)
	b = append(b, batchID...) // ValidID: nothing to escape
	b = append(b, `","source_platform_id":`...)
	b = strconv.AppendInt(b, e.source, 10)
	b = append(b, `,"sync_id":`...)
	b = strconv.AppendInt(b, e.syncID, 10)
	return append(b, `,"changes":[`...)
}

// end closes a batch body.
func (e *encoder) end(b []byte) []byte { return append(b, "]}"...) }

// outcome is what add did with a queue row.
type outcome uint8

const (
	added   outcome = iota
	echo            // came from the target: not sent back
	keyless         // no unique identifier field with a string or number value
	dropped         // left out by the transformer or by platform relations
)

// add appends the change of queue row r (after `count` changes already written) unless it
// is an echo or has no key.
func (e *encoder) add(b []byte, count int, r *capture.Row) ([]byte, outcome) {
	return e.addAs(b, count, r, false)
}

// addAs is add; with shouldDelete the change goes out as a deleted event with
// should_delete true and without data: platform relations say the record no longer
// belongs on the target, and its data is not the target's business.
func (e *encoder) addAs(b []byte, count int, r *capture.Row, shouldDelete bool) ([]byte, outcome) {
	if r.OriginPlatformID == e.target {
		return b, echo
	}
	fi, val := e.keys.find(r.Image)
	if fi < 0 {
		return b, keyless
	}
	if count > 0 {
		b = append(b, ',')
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, r.ID, 10)
	op := r.Op
	if shouldDelete {
		op = protocol.EventDeleted
	}
	b = append(b, `,"event_type":"`...)
	b = append(b, op...)
	b = append(b, `","model":`...)
	b = append(b, e.model...)
	b = append(b, `,"key":{"field":`...)
	b = append(b, e.fieldsJSON[fi]...)
	b = append(b, `,"value":`...)
	b = append(b, val...)
	b = append(b, '}')
	if op != protocol.EventDeleted {
		b = append(b, `,"data":`...)
		b = append(b, r.Image...)
	}
	if shouldDelete {
		b = append(b, `,"should_delete":true,"origin_platform_id":`...)
	} else {
		b = append(b, `,"should_delete":false,"origin_platform_id":`...)
	}
	origin := r.OriginPlatformID
	if origin == 0 {
		origin = e.source
	}
	b = strconv.AppendInt(b, origin, 10)
	b = append(b, `,"changed_at":"`...)
	b = e.appendChangedAt(b, r.ChangedAtMS)
	return append(b, `"}`...), added
}

// appendChangedAt appends a Unix millisecond time as RFC 3339 UTC with milliseconds. Rows
// of a batch are mostly written within the same second, so the formatted second is reused.
func (e *encoder) appendChangedAt(b []byte, ms int64) []byte {
	sec, frac := ms/1000, ms%1000
	if frac < 0 {
		sec, frac = sec-1, frac+1000
	}
	if sec != e.lastSec || e.secText == nil {
		e.lastSec = sec
		e.secText = time.Unix(sec, 0).UTC().AppendFormat(e.secText[:0], "2006-01-02T15:04:05")
	}
	b = append(b, e.secText...)
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10), 'Z')
}

// keyFinder finds the key of a row image: the first of its fields that the image holds
// with a string or number value.
type keyFinder struct {
	fields []string
	first  [256]bool // first bytes of the fields, to pass over other keys quickly
	maxLen int
}

func newKeyFinder(fields []string) keyFinder {
	k := keyFinder{fields: fields}
	for _, f := range fields {
		if f != "" {
			k.first[f[0]] = true
		}
		k.maxLen = max(k.maxLen, len(f))
	}
	return k
}

// find returns the index in fields of the first field that the JSON object img holds with
// a string or number value, and that value as raw JSON; -1 when there is none. It scans
// the object once without decoding it; a malformed image has no key.
func (k *keyFinder) find(img []byte) (int, []byte) {
	best, bestVal := -1, []byte(nil)
	i := skipSpace(img, 0)
	if i >= len(img) || img[i] != '{' {
		return -1, nil
	}
	i++
	for {
		i = skipSpace(img, i)
		if i >= len(img) {
			return -1, nil
		}
		if img[i] == '}' {
			return best, bestVal
		}
		if img[i] == ',' {
			i = skipSpace(img, i+1)
		}
		if i >= len(img) || img[i] != '"' {
			return -1, nil
		}
		keyEnd := skipString(img, i)
		if keyEnd < 0 {
			return -1, nil
		}
		key := img[i+1 : keyEnd-1]
		i = skipSpace(img, keyEnd)
		if i >= len(img) || img[i] != ':' {
			return -1, nil
		}
		i = skipSpace(img, i+1)
		valEnd := skipValue(img, i)
		if valEnd < 0 {
			return -1, nil
		}
		if fi := k.index(key); fi >= 0 && (best < 0 || fi < best) && usableKey(img[i]) {
			best, bestVal = fi, img[i:valEnd]
			if fi == 0 {
				return best, bestVal
			}
		}
		i = valEnd
	}
}

// usableKey reports whether a JSON value starting with c is a string or a number.
func usableKey(c byte) bool { return c == '"' || c == '-' || c >= '0' && c <= '9' }

// index returns the index of the field named by the raw JSON string content key, or -1.
func (k *keyFinder) index(key []byte) int {
	if bytes.IndexByte(key, '\\') >= 0 {
		var s string
		if err := json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &s); err != nil {
			return -1
		}
		key = []byte(s)
	}
	if len(key) == 0 || len(key) > k.maxLen || !k.first[key[0]] {
		return -1
	}
	for i, f := range k.fields {
		if string(key) == f {
			return i
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' {
		return i
	}
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string starting at b[i] == '"', or -1.
func skipString(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return -1
		}
		i += j
		// The quote is escaped when an odd number of backslashes precede it.
		k := i - 1
		for k >= 0 && b[k] == '\\' {
			k--
		}
		if (i-1-k)%2 == 0 {
			return i + 1
		}
		i++
	}
}

// skipValue returns the index after the JSON value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end := skipString(b, i)
				if end < 0 {
					return -1
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	start := i
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\t' && b[i] != '\r' {
		i++
	}
	if i == start {
		return -1
	}
	return i
}
