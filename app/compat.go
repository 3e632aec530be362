package app

import (
	"strings"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// keyFieldCandidates are the unique identifier fields that match records across platforms,
// in order of preference (the agent's default unique_identifier_fields).
var keyFieldCandidates = []string{"ulid", "uuid", "slug", "name", "title"}

// compareModels compares a source model with a target model. Column names match ignoring
// case (MySQL and PostgreSQL fold them); types are compared by family, so that equivalent
// types of different dialects (VARCHAR(255) and text, INTEGER and bigint, DATETIME and
// timestamp with time zone) do not count as differences.
func compareModels(src, dst protocol.Model) CompatReport {
	rep := CompatReport{MissingOnTarget: []string{}, ExtraOnTarget: []string{}, TypeDifferences: []TypeDifference{}}
	dstByName := make(map[string]protocol.Column, len(dst.Columns))
	for _, c := range dst.Columns {
		dstByName[strings.ToLower(c.Name)] = c
	}
	srcByName := make(map[string]protocol.Column, len(src.Columns))
	for _, c := range src.Columns {
		srcByName[strings.ToLower(c.Name)] = c
		d, ok := dstByName[strings.ToLower(c.Name)]
		if !ok {
			rep.MissingOnTarget = append(rep.MissingOnTarget, c.Name)
			continue
		}
		sf, df := typeFamily(c.Type), typeFamily(d.Type)
		if sf != df && sf != familyAny && df != familyAny {
			rep.TypeDifferences = append(rep.TypeDifferences, TypeDifference{Column: c.Name, SourceType: c.Type, TargetType: d.Type})
		}
	}
	for _, c := range dst.Columns {
		if _, ok := srcByName[strings.ToLower(c.Name)]; !ok {
			rep.ExtraOnTarget = append(rep.ExtraOnTarget, c.Name)
		}
	}
	for _, k := range keyFieldCandidates {
		if c, ok := srcByName[k]; ok {
			if _, ok := dstByName[k]; ok {
				name := c.Name
				rep.KeyField = &name
				break
			}
		}
	}
	return rep
}

// Type families of typeFamily.
const (
	familyAny      = "any"
	familyBool     = "boolean"
	familyInt      = "integer"
	familyDecimal  = "decimal"
	familyFloat    = "float"
	familyText     = "text"
	familyBlob     = "binary"
	familyDatetime = "datetime"
	familyDate     = "date"
	familyTime     = "time"
	familyJSON     = "json"
)

// typeFamily classifies a column type as SQLite, PostgreSQL or MySQL/MariaDB write it. An
// unknown type is its own family: its lower-case name without length or precision.
func typeFamily(typ string) string {
	t := strings.ToLower(strings.TrimSpace(typ))
	switch {
	case t == "":
		// A SQLite column without a declared type takes any value.
		return familyAny
	case strings.HasSuffix(t, "[]"):
		return t
	case strings.HasPrefix(t, "tinyint(1)"), strings.Contains(t, "bool"), t == "bit(1)":
		return familyBool
	case strings.Contains(t, "interval"):
		return "interval"
	case isIntegerType(t):
		return familyInt
	case strings.Contains(t, "datetime"), strings.HasPrefix(t, "timestamp"):
		return familyDatetime
	case strings.HasPrefix(t, "date"):
		return familyDate
	case strings.HasPrefix(t, "time"):
		return familyTime
	case strings.HasPrefix(t, "json"):
		return familyJSON
	case strings.Contains(t, "char"), strings.Contains(t, "clob"), strings.Contains(t, "text"),
		strings.HasPrefix(t, "uuid"), strings.HasPrefix(t, "ulid"), strings.HasPrefix(t, "enum"),
		strings.HasPrefix(t, "set("), t == "name":
		return familyText
	case strings.Contains(t, "blob"), t == "bytea", strings.Contains(t, "binary"):
		return familyBlob
	case strings.Contains(t, "real"), strings.Contains(t, "floa"), strings.Contains(t, "doub"):
		return familyFloat
	case strings.Contains(t, "dec"), strings.Contains(t, "num"), strings.Contains(t, "money"):
		return familyDecimal
	}
	if i := strings.IndexByte(t, '('); i > 0 {
		t = strings.TrimSpace(t[:i])
	}
	return t
}

// integerTypes are the integer type names of the three dialects.
var integerTypes = map[string]bool{
	"int": true, "integer": true, "tinyint": true, "smallint": true, "mediumint": true, "bigint": true,
	"int2": true, "int4": true, "int8": true, "serial": true, "smallserial": true, "bigserial": true,
	"serial2": true, "serial4": true, "serial8": true, "year": true,
}

// isIntegerType reports whether a lower-case type names an integer: one of its words is an
// integer type name ("int(11) unsigned", SQLite's "unsigned big int").
func isIntegerType(t string) bool {
	for _, w := range strings.FieldsFunc(t, func(r rune) bool { return r == ' ' || r == '(' || r == ')' }) {
		if integerTypes[w] {
			return true
		}
	}
	return false
}
