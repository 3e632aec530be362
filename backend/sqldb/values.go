package sqldb

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// flavor tells the value conversion which database it writes for.
type flavor uint8

const (
	flavorSQLite flavor = iota
	flavorPostgres
	flavorMySQL
)

// datetimeLayouts are the accepted spellings of a datetime value. Layouts without a zone
// are read as UTC. time.Parse accepts a fractional second after the seconds field even when
// the layout has none.
var datetimeLayouts = []string{
	time.RFC3339,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05Z07",
	"2006-01-02 15:04:05Z07",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseDatetime parses the datetime spellings mooxsync accepts: RFC 3339 with or without
// fractional seconds, "YYYY-MM-DD HH:MM:SS[.fff]" with or without a zone (none means UTC),
// and a plain date.
func ParseDatetime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) < len("2006-01-02") || s[4] != '-' {
		return time.Time{}, false
	}
	if t, ok := parseDatetimeFast(s); ok {
		return t, true
	}
	for _, layout := range datetimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// parseDatetimeFast parses the common spellings without allocating:
// YYYY-MM-DD, or YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH|±HH:MM|±HHMM] (the zone may
// follow one space). It reports false for anything else, valid or not.
func parseDatetimeFast(s string) (time.Time, bool) {
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			if !isDigit(s[i]) {
				return 0, false
			}
			n = n*10 + int(s[i]-'0')
		}
		return n, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 7)
	d, ok3 := num(8, 10)
	if !ok1 || !ok2 || !ok3 || s[7] != '-' || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) {
		return time.Time{}, false
	}
	if len(s) == 10 {
		return time.Date(y, time.Month(mo), d, 0, 0, 0, 0, time.UTC), true
	}
	if len(s) < 19 || (s[10] != 'T' && s[10] != ' ' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	h, ok1 := num(11, 13)
	mi, ok2 := num(14, 16)
	sec, ok3 := num(17, 19)
	if !ok1 || !ok2 || !ok3 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	i, nsec := 19, 0
	if i < len(s) && (s[i] == '.' || s[i] == ',') {
		i++
		start, scale := i, 100000000
		for i < len(s) && isDigit(s[i]) {
			nsec += int(s[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == start {
			return time.Time{}, false
		}
	}
	offset := 0
	if i < len(s) && s[i] == ' ' {
		i++
		if i == len(s) {
			return time.Time{}, false
		}
	}
	switch {
	case i == len(s):
	case (s[i] == 'Z' || s[i] == 'z') && i+1 == len(s):
	case s[i] == '+' || s[i] == '-':
		z := s[i+1:]
		var zh, zm int
		var ok bool
		switch {
		case len(z) == 2:
			zh, ok = num(i+1, i+3)
		case len(z) == 4:
			zh, ok1 = num(i+1, i+3)
			zm, ok2 = num(i+3, i+5)
			ok = ok1 && ok2
		case len(z) == 5 && z[2] == ':':
			zh, ok1 = num(i+1, i+3)
			zm, ok2 = num(i+4, i+6)
			ok = ok1 && ok2
		}
		if !ok || zh > 23 || zm > 59 {
			return time.Time{}, false
		}
		offset = zh*3600 + zm*60
		if s[i] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// FormatDatetime renders t the way row images and reads carry datetimes: RFC 3339 in UTC,
// fractional seconds only as far as they are not zero.
func FormatDatetime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

func badValue(col *column, format string, args ...any) error {
	return protocol.Errorf(protocol.CodeBadRequest, "column %q: "+format, append([]any{col.Name}, args...)...)
}

// bind converts a value from a row (JSON-decoded: nil, bool, string, json.Number, float64,
// map, slice, or a Go scalar) into what the driver should receive for col.
func bind(f flavor, col *column, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch col.kind {
	case kindDatetime, kindDatetimeTZ, kindDate:
		if s, ok := v.(string); ok && isZeroDate(s) {
			return nil, nil // MySQL's zero date is no date
		}
		t, err := toTime(col, v)
		if err != nil {
			return nil, err
		}
		return formatForDB(f, col.kind, t), nil
	case kindBool:
		b, err := toBool(col, v)
		if err != nil {
			return nil, err
		}
		if f == flavorSQLite {
			if b {
				return int64(1), nil
			}
			return int64(0), nil
		}
		return b, nil
	case kindInt:
		return toInt(f, v), nil
	case kindFloat:
		switch x := v.(type) {
		case json.Number:
			if fl, err := x.Float64(); err == nil {
				return fl, nil
			}
			return x.String(), nil
		case string:
			if fl, err := strconv.ParseFloat(x, 64); err == nil {
				return fl, nil
			}
		}
	case kindDecimal:
		switch x := v.(type) {
		case json.Number:
			return x.String(), nil
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), nil
		}
	case kindJSON:
		return toJSONText(v)
	case kindBlob:
		switch x := v.(type) {
		case string:
			if b, err := base64.StdEncoding.DecodeString(x); err == nil {
				return b, nil
			}
			return []byte(x), nil
		case []byte:
			return x, nil
		}
	case kindText:
		switch x := v.(type) {
		case bool:
			if x {
				return "1", nil
			}
			return "0", nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), nil
		}
	}
	return scalar(f, v)
}

// scalar is the fallback conversion: numbers as their text, nested JSON as JSON text.
func scalar(f flavor, v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return x.String(), nil
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		return string(b), nil
	case bool:
		if f == flavorSQLite {
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
		return x, nil
	case json.RawMessage:
		return string(x), nil
	case int:
		return int64(x), nil
	}
	return v, nil
}

// isZeroDate reports MySQL's "zero date" spellings, which mean "no date".
func isZeroDate(s string) bool { return strings.HasPrefix(s, "0000-00-00") }

func toTime(col *column, v any) (time.Time, error) {
	switch x := v.(type) {
	case string:
		if t, ok := ParseDatetime(x); ok {
			return t, nil
		}
		return time.Time{}, badValue(col, "invalid datetime %q", truncate(x, 40))
	case time.Time:
		return x.UTC(), nil
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return unixTime(f), nil
		}
	case float64:
		return unixTime(x), nil
	case int64:
		return time.Unix(x, 0).UTC(), nil
	}
	return time.Time{}, badValue(col, "want a datetime, got %T", v)
}

func unixTime(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC()
}

// formatForDB renders a UTC instant in the form each database stores for the kind.
// Naive datetime columns get the UTC wall clock; PostgreSQL timestamptz gets an explicit
// zone; MySQL TIMESTAMP is read in the session zone, which Open pins to +00:00. Fractional
// seconds are written as far as they are not zero (up to ns for SQLite, µs elsewhere).
func formatForDB(f flavor, k kind, t time.Time) string {
	var buf [40]byte
	b := appendDate(buf[:0], t)
	if k == kindDate {
		return string(b)
	}
	digits := 6
	if f == flavorSQLite {
		digits = 9
	}
	b = appendClock(append(b, ' '), t, digits)
	if f == flavorPostgres && k == kindDatetimeTZ {
		b = append(b, 'Z')
	}
	return string(b)
}

func appendDate(b []byte, t time.Time) []byte {
	y, m, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, "2006-01-02")
	}
	b = appendInt(b, y, 4)
	b = appendInt(append(b, '-'), int(m), 2)
	return appendInt(append(b, '-'), d, 2)
}

// appendClock writes HH:MM:SS and a fraction of at most digits digits, without trailing zeros.
func appendClock(b []byte, t time.Time, digits int) []byte {
	h, mi, s := t.Clock()
	b = appendInt(b, h, 2)
	b = appendInt(append(b, ':'), mi, 2)
	b = appendInt(append(b, ':'), s, 2)
	frac := t.Nanosecond()
	for range 9 - digits {
		frac /= 10
	}
	if frac == 0 {
		return b
	}
	for frac%10 == 0 {
		frac /= 10
		digits--
	}
	return appendInt(append(b, '.'), frac, digits)
}

// appendInt writes n zero-padded to width digits.
func appendInt(b []byte, n, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for n > 0 || width > 0 {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		width--
	}
	return append(b, tmp[i:]...)
}

func toBool(col *column, v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case json.Number:
		f, err := x.Float64()
		if err == nil {
			return f != 0, nil
		}
	case int64:
		return x != 0, nil
	case float64:
		return x != 0, nil
	case string:
		if b, err := strconv.ParseBool(x); err == nil {
			return b, nil
		}
	}
	return false, badValue(col, "want a boolean")
}

func toInt(f flavor, v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if fl, err := x.Float64(); err == nil && fl == math.Trunc(fl) && math.Abs(fl) < 1<<53 {
			return int64(fl)
		}
		return x.String()
	case string:
		if i, err := strconv.ParseInt(x, 10, 64); err == nil {
			return i
		}
		return x
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	}
	v, _ = scalar(f, v)
	return v
}

// toJSONText renders a value for a JSON column. A string that already is a JSON document
// is stored as that document (a text column synced into a JSON column); any other string is
// stored as a JSON string.
func toJSONText(v any) (any, error) {
	switch x := v.(type) {
	case string:
		if json.Valid([]byte(x)) {
			return x, nil
		}
	case json.RawMessage:
		return string(x), nil
	case []byte:
		if json.Valid(x) {
			return string(x), nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// source tells normalize where a value comes from.
type source uint8

const (
	fromScan  source = iota // a driver's Scan into any
	fromImage               // a trigger's JSON row image
)

// normalize turns a stored value into its canonical form for row images and reads:
// numbers as json.Number, datetimes as RFC 3339 UTC strings, booleans as bool, JSON
// documents decoded, bytes as base64. col may be nil (column unknown): values are then
// only made JSON-safe.
func normalize(col *column, v any, src source) any {
	k := kindOther
	if col != nil {
		k = col.kind
	}
	switch x := v.(type) {
	case nil:
		return nil
	case []byte:
		if k == kindBlob {
			return base64.StdEncoding.EncodeToString(x)
		}
		return normalizeString(k, string(x), src)
	case string:
		return normalizeString(k, x, src)
	case time.Time:
		if x.IsZero() {
			return nil // what go-sql-driver makes of MySQL's zero date
		}
		if k == kindDate {
			return x.Format("2006-01-02")
		}
		return FormatDatetime(x)
	case int64:
		if k == kindBool {
			return x != 0
		}
		return json.Number(strconv.FormatInt(x, 10))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
		if k == kindBool {
			return x != 0
		}
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
	case json.Number:
		switch k {
		case kindBool:
			return x != "0"
		case kindDatetime, kindDatetimeTZ:
			if f, err := x.Float64(); err == nil {
				return FormatDatetime(unixTime(f))
			}
		}
		return x
	}
	return v
}

func normalizeString(k kind, s string, src source) any {
	switch k {
	case kindDatetime, kindDatetimeTZ:
		if isZeroDate(s) {
			return nil
		}
		if t, ok := ParseDatetime(s); ok {
			return FormatDatetime(t)
		}
	case kindDate:
		if isZeroDate(s) {
			return nil
		}
		if t, ok := ParseDatetime(s); ok {
			return t.Format("2006-01-02")
		}
	case kindInt, kindFloat, kindDecimal:
		if isNumber(s) {
			return json.Number(s)
		}
	case kindBool:
		if b, err := strconv.ParseBool(s); err == nil {
			return b
		}
	case kindJSON:
		if v, ok := decodeJSON([]byte(s)); ok {
			return v
		}
	case kindBlob:
		if src == fromImage {
			h := strings.TrimPrefix(s, `\x`)
			if b, err := hex.DecodeString(h); err == nil {
				return base64.StdEncoding.EncodeToString(b)
			}
		}
		return base64.StdEncoding.EncodeToString([]byte(s))
	}
	return s
}

func decodeJSON(b []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, false
	}
	return v, true
}

// isNumber reports whether s is a JSON number literal.
func isNumber(s string) bool {
	if s == "" || !(s[0] == '-' || isDigit(s[0])) || !isDigit(s[len(s)-1]) {
		return false
	}
	return json.Valid([]byte(s))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
