package sqldb

// Row digests: the canonical encoding of a row's values and its SHA-256, the same whatever
// database the row comes from. appendRawCanonical encodes values as drivers return them,
// which is what hashing a whole table spends its time on.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Digest is a 128-bit row or range digest. The digest of a range is the sum modulo 2^128 of
// the digests of its rows (each read as a little-endian number), so it does not depend on
// the order rows are read in, and two equal rows do not cancel out as they would under XOR.
// In JSON and text it is standard padded base64 (24 characters).
type Digest [16]byte

// Add returns d + o modulo 2^128.
func (d Digest) Add(o Digest) Digest {
	lo, c := bits.Add64(binary.LittleEndian.Uint64(d[:8]), binary.LittleEndian.Uint64(o[:8]), 0)
	hi, _ := bits.Add64(binary.LittleEndian.Uint64(d[8:]), binary.LittleEndian.Uint64(o[8:]), c)
	var out Digest
	binary.LittleEndian.PutUint64(out[:8], lo)
	binary.LittleEndian.PutUint64(out[8:], hi)
	return out
}

// String returns d in standard padded base64.
func (d Digest) String() string { return base64.StdEncoding.EncodeToString(d[:]) }

// MarshalText encodes d as standard padded base64.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes standard padded base64 of exactly 16 bytes.
func (d *Digest) UnmarshalText(b []byte) error {
	var buf [18]byte
	if len(b) != 24 {
		return fmt.Errorf("digest %q: want base64 of 16 bytes", truncate(string(b), 40))
	}
	n, err := base64.StdEncoding.Decode(buf[:], b)
	if err != nil || n != len(d) {
		return fmt.Errorf("digest %q: want base64 of 16 bytes", truncate(string(b), 40))
	}
	copy(d[:], buf[:n])
	return nil
}

// RowHasher computes row digests; its zero value is ready and it is not safe for concurrent
// use (it reuses a buffer).
//
// A row's digest is the first 16 bytes of SHA-256 over the key text as a text item, then
// each value of the projection in order, each value encoded as:
//
//	NULL (or absent)  0x00
//	scalar            0x01, uvarint byte length, the scalar's text
//	array             0x02, uvarint element count, the elements
//	object            0x03, uvarint member count, then per member in byte order of the
//	                  names: uvarint length, the name, the value
//
// A scalar's text is: for a number its canonical decimal (no exponent, no leading zeros,
// no trailing fractional zeros, no "-0": 1.50 → "1.5", 1e3 → "1000"; beyond 40 digits of
// padding it is "d.ddde±x"); for a boolean "1" or "0"; for a string that is a date or a
// datetime (ParseDatetime) the instant in UTC truncated to whole seconds as
// "2006-01-02T15:04:05Z" (every database keeps whole seconds; MySQL DATETIME(0) rounds a
// fraction, so a source with fractional seconds against such a column differs); any other
// string as it is. Numbers, booleans and strings of the same text therefore hash alike (a
// boolean column on one side and an integer column on the other agree); NULL and "" do
// not. JSON documents are decoded (key order and spacing do not matter).
type RowHasher struct {
	buf []byte
}

// Sum returns the digest of a row with key text key and values vals.
func (h *RowHasher) Sum(key string, vals []any) Digest {
	b := appendText(h.buf[:0], key)
	for _, v := range vals {
		b = AppendCanonical(b, v)
	}
	h.buf = b
	return digestOf(b)
}

// digestOf is the first 16 bytes of SHA-256 of an encoded row.
func digestOf(b []byte) Digest {
	sum := sha256.Sum256(b)
	var d Digest
	copy(d[:], sum[:16])
	return d
}

// AppendCanonical appends the canonical encoding of one value (see RowHasher).
func AppendCanonical(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 0)
	case string:
		return appendString(b, x)
	case json.Number:
		return appendScalar(b, canonicalNumber(string(x)))
	case bool:
		if x {
			return appendScalar(b, "1")
		}
		return appendScalar(b, "0")
	case map[string]any:
		b = binary.AppendUvarint(append(b, 3), uint64(len(x)))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = AppendCanonical(appendText(b, k), x[k])
		}
		return b
	case []any:
		b = binary.AppendUvarint(append(b, 2), uint64(len(x)))
		for _, e := range x {
			b = AppendCanonical(b, e)
		}
		return b
	case int64:
		return appendScalar(b, strconv.FormatInt(x, 10))
	case int:
		return appendScalar(b, strconv.Itoa(x))
	case int32:
		return appendScalar(b, strconv.FormatInt(int64(x), 10))
	case uint64:
		return appendScalar(b, strconv.FormatUint(x, 10))
	case float64:
		return appendFloat(b, x, 64)
	case float32:
		return appendFloat(b, float64(x), 32)
	case time.Time:
		return appendDatetime(b, x)
	case []byte:
		return appendScalar(b, base64.StdEncoding.EncodeToString(x))
	case json.RawMessage:
		if dv, ok := decodeJSON(x); ok {
			return AppendCanonical(b, dv)
		}
		return appendScalar(b, string(x))
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return AppendCanonical(b, m)
	case []string:
		a := make([]any, len(x))
		for i, s := range x {
			a[i] = s
		}
		return AppendCanonical(b, a)
	}
	return appendScalar(b, fmt.Sprint(v))
}

func appendText(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendScalar(b []byte, s string) []byte { return appendText(append(b, 1), s) }

// datetimeOf parses a string that is a date or a datetime (ParseDatetime).
func datetimeOf(s string) (time.Time, bool) {
	if len(s) < 10 || len(s) > 40 || s[4] != '-' || !isDigit(s[0]) {
		return time.Time{}, false
	}
	return ParseDatetime(s)
}

// appendDatetime appends the scalar of an instant: UTC, whole seconds, RFC 3339.
func appendDatetime(b []byte, t time.Time) []byte {
	t = t.UTC().Truncate(time.Second)
	y, mo, d := t.Date()
	if y < 1 || y > 9999 {
		return appendScalar(b, t.Format(time.RFC3339))
	}
	h, mi, sec := t.Clock()
	b = append(b, 1, 20) // "2006-01-02T15:04:05Z" is 20 bytes
	b = appendInt(b, y, 4)
	b = appendInt(append(b, '-'), int(mo), 2)
	b = appendInt(append(b, '-'), d, 2)
	b = appendInt(append(b, 'T'), h, 2)
	b = appendInt(append(b, ':'), mi, 2)
	b = appendInt(append(b, ':'), sec, 2)
	return append(b, 'Z')
}

// appendFloat appends the scalar of a binary float of bitSize bits: its shortest decimal,
// canonical.
func appendFloat(b []byte, f float64, bitSize int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendScalar(b, strconv.FormatFloat(f, 'g', -1, 64))
	}
	var buf [32]byte
	n := strconv.AppendFloat(buf[:0], f, 'g', -1, bitSize)
	if canonicalDecimal(n) {
		return append(binary.AppendUvarint(append(b, 1), uint64(len(n))), n...)
	}
	return appendScalar(b, canonicalNumber(string(n)))
}

// canonicalDecimal reports whether n is a number already in canonical form:
// -?(0|[1-9][0-9]*)(.[0-9]*[1-9])? and not "-0".
func canonicalDecimal[T string | []byte](n T) bool {
	i := 0
	if i < len(n) && n[i] == '-' {
		i++
	}
	switch {
	case i >= len(n):
		return false
	case n[i] == '0':
		i++
		if i == len(n) {
			return n[0] != '-'
		}
	case n[i] >= '1' && n[i] <= '9':
		for i < len(n) && isDigit(n[i]) {
			i++
		}
		if i == len(n) {
			return true
		}
	default:
		return false
	}
	if n[i] != '.' || i+1 == len(n) {
		return false
	}
	for i++; i < len(n); i++ {
		if !isDigit(n[i]) {
			return false
		}
	}
	return n[len(n)-1] != '0'
}

// canonicalNumber renders a decimal number literal canonically (see RowHasher); text that
// is not a number is returned as it is.
func canonicalNumber(s string) string {
	i, neg := 0, false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	if canonicalDecimal(s) {
		return s
	}
	var digits []byte
	exp := 0 // value = digits × 10^exp
	seenDigit := false
	for ; i < len(s) && isDigit(s[i]); i++ {
		seenDigit = true
		if len(digits) > 0 || s[i] != '0' {
			digits = append(digits, s[i])
		}
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && isDigit(s[i]); i++ {
			seenDigit = true
			exp--
			if len(digits) > 0 || s[i] != '0' {
				digits = append(digits, s[i])
			}
		}
	}
	if !seenDigit {
		return s
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		e, err := strconv.Atoi(s[i:])
		if err != nil || e > 1e6 || e < -1e6 {
			return s
		}
		exp += e
		i = len(s)
	}
	if i != len(s) {
		return s
	}
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	if len(digits) == 0 {
		return "0"
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	const maxPad = 40
	switch {
	case exp >= 0 && exp <= maxPad:
		b.Write(digits)
		b.WriteString(strings.Repeat("0", exp))
	case exp < 0 && -exp < len(digits):
		b.Write(digits[:len(digits)+exp])
		b.WriteByte('.')
		b.Write(digits[len(digits)+exp:])
	case exp < 0 && -exp-len(digits) <= maxPad:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -exp-len(digits)))
		b.Write(digits)
	default:
		b.WriteByte(digits[0])
		if len(digits) > 1 {
			b.WriteByte('.')
			b.Write(digits[1:])
		}
		b.WriteString("e")
		b.WriteString(strconv.Itoa(exp + len(digits) - 1))
	}
	return b.String()
}

func isDatetimeKind(k kind) bool { return k == kindDatetime || k == kindDatetimeTZ || k == kindDate }

// scanned prepares a value as the driver returned it for normalize: a number in a datetime
// column (SQLite stores Unix times so) is read as Unix seconds, as in row images.
func scanned(c *column, v any) any {
	if !isDatetimeKind(c.kind) {
		return v
	}
	switch x := v.(type) {
	case int64:
		return json.Number(strconv.FormatInt(x, 10))
	case float64:
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
	}
	return v
}

// rawKeyText is KeyText of the canonical form of a scanned key value; ok is false for NULL.
func rawKeyText(c *column, v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		if c.kind == kindText {
			return x, true
		}
	case int64:
		if c.kind == kindInt {
			return strconv.FormatInt(x, 10), true
		}
	}
	kv := normalize(c, scanned(c, v), fromScan)
	return KeyText(kv), kv != nil
}

// appendRawCanonical appends the canonical encoding of a value the driver scanned from c:
// exactly AppendCanonical(b, normalize(c, scanned(c, v), fromScan)), but without
// allocating for the common types (TestAppendRawCanonical holds the two together).
func appendRawCanonical(b []byte, c *column, v any) []byte {
	var num [24]byte
	switch x := v.(type) {
	case nil:
		return append(b, 0)
	case string:
		if r, ok := appendRawString(b, c.kind, x); ok {
			return r
		}
	case []byte:
		if c.kind != kindBlob {
			if r, ok := appendRawString(b, c.kind, string(x)); ok {
				return r
			}
		}
	case int64:
		switch c.kind {
		case kindBool:
			if x != 0 {
				return appendScalar(b, "1")
			}
			return appendScalar(b, "0")
		case kindInt, kindText, kindFloat, kindDecimal, kindOther:
			n := strconv.AppendInt(num[:0], x, 10)
			return append(binary.AppendUvarint(append(b, 1), uint64(len(n))), n...)
		}
	case float64:
		if c.kind != kindBool && !isDatetimeKind(c.kind) {
			return appendFloat(b, x, 64)
		}
	case bool:
		if x {
			return appendScalar(b, "1")
		}
		return appendScalar(b, "0")
	case time.Time:
		if isDatetimeKind(c.kind) && c.kind != kindDate && !x.IsZero() {
			return appendDatetime(b, x)
		}
	}
	return AppendCanonical(b, normalize(c, scanned(c, v), fromScan))
}

// appendRawString is appendRawCanonical for a string the driver returned; ok is false when
// the slow path must decide.
func appendRawString(b []byte, k kind, s string) ([]byte, bool) {
	switch k {
	case kindText, kindOther, kindTime:
		return appendString(b, s), true
	case kindInt, kindFloat, kindDecimal:
		if canonicalDecimal(s) {
			return appendScalar(b, s), true
		}
		if isNumber(s) {
			return appendScalar(b, canonicalNumber(s)), true
		}
		return appendString(b, s), true
	case kindDatetime, kindDatetimeTZ:
		if isZeroDate(s) {
			return append(b, 0), true
		}
		if t, ok := ParseDatetime(s); ok {
			if y := t.Year(); y >= 1 && y <= 9999 {
				return appendDatetime(b, t), true
			}
			return nil, false
		}
		return appendString(b, s), true
	case kindJSON:
		return appendCanonicalJSON(b, s)
	}
	return nil, false
}

// appendString is AppendCanonical of a string.
func appendString(b []byte, s string) []byte {
	if t, ok := datetimeOf(s); ok {
		return appendDatetime(b, t)
	}
	return appendScalar(b, s)
}

// appendCanonicalJSON appends the canonical encoding of the JSON document text, as
// AppendCanonical of the decoded document would (encoding/json with UseNumber); ok is false
// when the text is not a document encoding/json would decode the same way (invalid, or an
// object with a repeated name): the caller then takes the slow path.
func appendCanonicalJSON(b []byte, text string) ([]byte, bool) {
	p := jsonPool.Get().(*jsonCanon)
	defer func() {
		p.s = "" // keep no document alive in the pool
		jsonPool.Put(p)
	}()
	p.s, p.i = text, 0
	p.ws()
	out, ok := p.value(b, 0)
	if !ok {
		return nil, false
	}
	p.ws()
	return out, p.i == len(p.s)
}

// jsonCanon is a small JSON parser that writes the canonical encoding as it reads. Its
// scratch buffers (one per nesting depth) are kept from document to document.
type jsonCanon struct {
	s       string
	i       int
	bufs    [][]byte       // encoded elements or members of the container at each depth
	members [][]jsonMember // the members of the object at each depth
}

// jsonMember is one member of an object being read: its name, and where its encoded name
// and value lie in the depth's buffer.
type jsonMember struct {
	name       string
	start, end int
}

var jsonPool = sync.Pool{New: func() any { return new(jsonCanon) }}

// scratch returns the emptied buffers of depth d.
func (p *jsonCanon) scratch(d int) ([]byte, []jsonMember) {
	for len(p.bufs) <= d {
		p.bufs = append(p.bufs, nil)
		p.members = append(p.members, nil)
	}
	return p.bufs[d][:0], p.members[d][:0]
}

const maxJSONDepth = 256

func (p *jsonCanon) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonCanon) value(b []byte, depth int) ([]byte, bool) {
	if p.i >= len(p.s) || depth > maxJSONDepth {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(b, depth)
	case c == '[':
		p.i++
		var (
			n  int
			ok bool
		)
		elems, _ := p.scratch(depth)
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return binary.AppendUvarint(append(b, 2), 0), true
		}
		for done := false; !done; {
			p.ws()
			if elems, ok = p.value(elems, depth+1); !ok {
				return nil, false
			}
			n++
			if done, ok = p.next(']'); !ok {
				return nil, false
			}
		}
		p.bufs[depth] = elems
		return append(binary.AppendUvarint(append(b, 2), uint64(n)), elems...), true
	case c == '"':
		str, ok := p.str()
		if !ok {
			return nil, false
		}
		return appendString(b, str), true
	case c == 't':
		return p.lit(b, "true", "1")
	case c == 'f':
		return p.lit(b, "false", "0")
	case c == 'n':
		if strings.HasPrefix(p.s[p.i:], "null") {
			p.i += 4
			return append(b, 0), true
		}
		return nil, false
	default:
		start := p.i
		if !p.number() {
			return nil, false
		}
		return appendScalar(b, canonicalNumber(p.s[start:p.i])), true
	}
}

func compareMembers(x, y jsonMember) int { return strings.Compare(x.name, y.name) }

// next reads what follows an element of an array or object: a comma (done false) or the
// closing bracket (done true); ok is false for anything else.
func (p *jsonCanon) next(closing byte) (done, ok bool) {
	p.ws()
	if p.i >= len(p.s) {
		return false, false
	}
	switch p.s[p.i] {
	case ',':
		p.i++
		return false, true
	case closing:
		p.i++
		return true, true
	}
	return false, false
}

func (p *jsonCanon) lit(b []byte, word, text string) ([]byte, bool) {
	if !strings.HasPrefix(p.s[p.i:], word) {
		return nil, false
	}
	p.i += len(word)
	return appendScalar(b, text), true
}

// object reads an object, encodes its members, and writes them sorted by name.
func (p *jsonCanon) object(b []byte, depth int) ([]byte, bool) {
	p.i++ // {
	enc, members := p.scratch(depth)
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return binary.AppendUvarint(append(b, 3), 0), true
	}
	for done := false; !done; {
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, false
		}
		name, ok := p.str()
		if !ok {
			return nil, false
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, false
		}
		p.i++
		p.ws()
		start := len(enc)
		enc = appendText(enc, name)
		if enc, ok = p.value(enc, depth+1); !ok {
			return nil, false
		}
		members = append(members, jsonMember{name, start, len(enc)})
		if done, ok = p.next('}'); !ok {
			return nil, false
		}
	}
	p.bufs[depth], p.members[depth] = enc, members
	if !slices.IsSortedFunc(members, compareMembers) {
		slices.SortFunc(members, compareMembers)
	}
	for i := 1; i < len(members); i++ {
		if members[i].name == members[i-1].name {
			return nil, false // a repeated name: encoding/json keeps the last one
		}
	}
	b = binary.AppendUvarint(append(b, 3), uint64(len(members)))
	for _, m := range members {
		b = append(b, enc[m.start:m.end]...)
	}
	return b, true
}

// str reads a JSON string and returns its value as encoding/json decodes it; ok is false
// for invalid JSON and for invalid UTF-8 (which the slow path handles).
func (p *jsonCanon) str() (string, bool) {
	p.i++ // "
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '"' {
			v := p.s[start:p.i]
			p.i++
			return v, utf8.ValidString(v) // encoding/json would replace invalid bytes
		}
		if c == '\\' || c < 0x20 {
			return p.strSlow(start)
		}
		p.i++
	}
	return "", false
}

// strSlow decodes a string with escapes through encoding/json itself.
func (p *jsonCanon) strSlow(start int) (string, bool) {
	i := start
	for i < len(p.s) {
		switch p.s[i] {
		case '\\':
			i += 2
			continue
		case '"':
			var v string
			if err := json.Unmarshal([]byte(p.s[start-1:i+1]), &v); err != nil {
				return "", false
			}
			p.i = i + 1
			return v, true
		}
		i++
	}
	return "", false
}

// number reads a JSON number literal.
func (p *jsonCanon) number() bool {
	s, i := p.s, p.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	p.i = i
	return true
}
