package sqldb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// RawOutboxRow is one captured change read by ReadChangesRaw: like OutboxRow, with the row
// image kept as a JSON object instead of a decoded map.
type RawOutboxRow struct {
	Seq   int64
	Model string
	Op    string
	// Image is the full row image as a compact JSON object whose values are in canonical
	// form (see the package comment), normalised by the table's current schema: decoded,
	// it equals OutboxRow.Row. The members keep the trigger's order.
	Image            []byte
	OriginPlatformID int64
	ChangedAt        time.Time // UTC, millisecond precision
}

// ReadChangesRaw is ReadChanges for readers that pass the row images on as JSON (the
// capture queue): it rewrites only the values whose stored form is not canonical (booleans
// stored as numbers, datetimes, JSON documents stored as text, bytes, numbers stored as
// text) and copies the others as they are, instead of decoding every image into a map.
// The same caveats about commit order apply.
func (db *DB) ReadChangesRaw(ctx context.Context, afterSeq int64, limit int) ([]RawOutboxRow, error) {
	if limit <= 0 {
		limit = 1000
	}
	d := db.d
	q := "SELECT " + d.QuoteIdent("seq") + ", " + d.QuoteIdent("model") + ", " + d.QuoteIdent("op") + ", " +
		d.QuoteIdent("row_image") + ", " + d.QuoteIdent("origin_platform_id") + ", " + d.QuoteIdent("changed_at") +
		" FROM " + d.QuoteIdent(OutboxTable) + " WHERE " + d.QuoteIdent("seq") + " > " + d.Placeholder(1) +
		" ORDER BY " + d.QuoteIdent("seq") + " LIMIT " + strconv.Itoa(limit)
	// The limit is a literal: SQLite recompiles a statement whenever a new value is bound to
	// LIMIT ?, so a bound limit would undo the cached statement below.
	// A statement prepared once: the reader runs it every few milliseconds while changes
	// trickle in, and preparing it again each time would cost more than the read.
	stmt, err := db.cachedStmt(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	var rows *sql.Rows
	if stmt != nil {
		rows, err = stmt.QueryContext(ctx, afterSeq)
	} else {
		rows, err = db.sql.QueryContext(ctx, q, afterSeq)
	}
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	defer rows.Close()
	tables := map[string]*table{}
	refreshed := map[string]bool{}
	var (
		out []RawOutboxRow
		buf []byte // the images of a round, back to back
	)
	for rows.Next() {
		var (
			r       RawOutboxRow
			img     sql.RawBytes
			origin  sql.NullInt64
			changed any
		)
		if err := rows.Scan(&r.Seq, &r.Model, &r.Op, &img, &origin, &changed); err != nil {
			return nil, fmt.Errorf("read changes: %w", err)
		}
		r.OriginPlatformID = origin.Int64
		r.ChangedAt = changedAt(changed)
		t, ok := tables[r.Model]
		if !ok {
			t, _ = db.table(ctx, db.sql, r.Model) // a dropped table leaves values as stored
			tables[r.Model] = t
		}
		start := len(buf)
		var complete bool
		if buf, complete, err = canonicalImage(buf, t, img); err != nil {
			return nil, fmt.Errorf("read changes: seq %d: %w", r.Seq, err)
		}
		if !complete && !refreshed[r.Model] {
			// A column the cached schema does not know: it was added since. Read it once more.
			refreshed[r.Model] = true
			if fresh, err := db.reload(ctx, db.sql, r.Model); err == nil {
				tables[r.Model] = fresh
				if buf, _, err = canonicalImage(buf[:start], fresh, img); err != nil {
					return nil, fmt.Errorf("read changes: seq %d: %w", r.Seq, err)
				}
			}
		}
		r.Image = buf[start:len(buf):len(buf)]
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	return out, nil
}

var errBadImage = errors.New("row image: not a JSON object")

// canonicalImage appends the canonical form of the JSON object img, whose members are the
// columns of t (nil: unknown table, values only made JSON-safe as normalize does), to dst.
// complete is false when t does not know one of the members.
func canonicalImage(dst []byte, t *table, img []byte) (out []byte, complete bool, err error) {
	complete = t != nil
	i := skipWS(img, 0)
	if i >= len(img) || img[i] != '{' {
		return dst, false, errBadImage
	}
	dst = append(dst, '{')
	i++
	for n := 0; ; n++ {
		i = skipWS(img, i)
		if i >= len(img) {
			return dst, false, errBadImage
		}
		if img[i] == '}' {
			if skipWS(img, i+1) != len(img) {
				return dst, false, errBadImage
			}
			return append(dst, '}'), complete, nil
		}
		if n > 0 {
			if img[i] != ',' {
				return dst, false, errBadImage
			}
			i = skipWS(img, i+1)
		}
		if i >= len(img) || img[i] != '"' {
			return dst, false, errBadImage
		}
		keyEnd, escaped := scanString(img, i)
		if keyEnd < 0 {
			return dst, false, errBadImage
		}
		rawKey := img[i:keyEnd]
		i = skipWS(img, keyEnd)
		if i >= len(img) || img[i] != ':' {
			return dst, false, errBadImage
		}
		i = skipWS(img, i+1)
		valEnd := scanValue(img, i)
		if valEnd < 0 {
			return dst, false, errBadImage
		}
		var c *column
		if t != nil {
			if escaped {
				var name string
				if err := json.Unmarshal(rawKey, &name); err != nil {
					return dst, false, fmt.Errorf("row image: %w", err)
				}
				c = t.byName[name]
			} else {
				c = t.byName[string(rawKey[1:len(rawKey)-1])]
			}
			complete = complete && c != nil
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONText(dst, rawKey)
		dst = append(dst, ':')
		if dst, err = appendCanonical(dst, c, img[i:valEnd]); err != nil {
			return dst, false, err
		}
		i = valEnd
	}
}

// appendCanonical appends the canonical form of one raw JSON value of column c (nil:
// unknown). Values already canonical for the column's kind are copied; the others go
// through normalize, exactly as decodeImage treats them.
func appendCanonical(dst []byte, c *column, raw []byte) ([]byte, error) {
	k := kindOther
	if c != nil {
		k = c.kind
	}
	switch raw[0] {
	case 'n', 't', 'f':
		if string(raw) == "null" || string(raw) == "true" || string(raw) == "false" {
			return append(dst, raw...), nil // normalize keeps nil and booleans
		}
	case '{', '[':
		return appendJSONText(dst, raw), nil // a decoded document is kept as it is
	case '"':
		switch k {
		case kindText, kindOther, kindTime:
			return appendJSONText(dst, raw), nil // strings stay strings
		case kindJSON:
			// A JSON document stored as text is the document itself.
			s, err := unquote(raw)
			if err != nil {
				return dst, fmt.Errorf("row image: %w", err)
			}
			if doc := bytes.TrimSpace(s); json.Valid(doc) {
				return appendJSONText(dst, doc), nil
			}
			return appendJSONText(dst, raw), nil
		}
	default: // a number
		if k != kindBool && k != kindDatetime && k != kindDatetimeTZ {
			return append(dst, raw...), nil // json.Number stays as it is
		}
	}
	if raw[0] == '"' {
		s, err := unquote(raw)
		if err != nil {
			return dst, fmt.Errorf("row image: %w", err)
		}
		return appendJSONValue(dst, normalizeString(k, string(s), fromImage))
	}
	return appendJSONValue(dst, normalize(c, json.Number(raw), fromImage))
}

// appendJSONText appends JSON text as it is, unless it holds invalid UTF-8, which
// encoding/json would have replaced with U+FFFD: then it goes through decode and encode.
func appendJSONText(dst, raw []byte) []byte {
	for _, b := range raw {
		if b >= utf8.RuneSelf {
			if utf8.Valid(raw) {
				break
			}
			var v any
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if dec.Decode(&v) == nil {
				if out, err := appendJSONValue(dst, v); err == nil {
					return out
				}
			}
			break
		}
	}
	return append(dst, raw...)
}

// appendJSONValue appends a normalised value as JSON (HTML characters not escaped).
func appendJSONValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case json.Number:
		if x == "" {
			return append(dst, '0'), nil
		}
		return append(dst, x...), nil
	case string:
		if plainString(x) {
			dst = append(dst, '"')
			dst = append(dst, x...)
			return append(dst, '"'), nil
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return dst, fmt.Errorf("row image: %w", err)
	}
	return append(dst, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...), nil
}

// plainString reports whether s needs no escaping in JSON.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// unquote returns the content of a JSON string.
func unquote(raw []byte) ([]byte, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index after the JSON string starting at b[i] == '"' (-1 when it
// does not end or is not valid JSON: a control character or a bad escape) and whether it
// holds escapes.
func scanString(b []byte, i int) (end int, escaped bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped
		case c < 0x20:
			return -1, escaped
		case c == '\\':
			escaped = true
			j++
			if j >= len(b) {
				return -1, escaped
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) || !isHex(b[j+1]) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) {
					return -1, escaped
				}
				j += 4
			default:
				return -1, escaped
			}
		}
	}
	return -1, escaped
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// scanValue returns the index after the JSON value starting at b[i], or -1. It checks
// only as much as it needs to find the end; encoding/json validates documents it decodes.
func scanValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := scanString(b, i)
		return end
	case '{', '[':
		start, depth := i, 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, _ := scanString(b, i)
				if end < 0 {
					return -1
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					if !json.Valid(b[start : i+1]) {
						return -1
					}
					return i + 1
				}
			}
		}
		return -1
	}
	start := i
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' &&
		b[i] != '\t' && b[i] != '\r' {
		i++
	}
	if i == start || !json.Valid(b[start:i]) {
		return -1
	}
	return i
}
