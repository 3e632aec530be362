package transform

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
)

// LowercaseEmail is the name of the example Go transformer that normalises e-mail
// addresses, so that a target matching users by e-mail finds them however they were typed.
const LowercaseEmail = "lowercase_email"

// DefaultEmailFields are the fields LowercaseEmail normalises when its config names none:
// Laravel's users.email and WordPress's wp_users.user_email.
var DefaultEmailFields = []string{"email", "user_email"}

// lowercaseEmail trims and lower-cases the string values of its fields.
type lowercaseEmail struct {
	fields []string
}

// NewLowercaseEmail is the Factory of LowercaseEmail. Its config is optional:
// {"fields": ["email", "billing_email"]} names the fields to normalise instead of
// DefaultEmailFields.
func NewLowercaseEmail(config json.RawMessage) (Transformer, error) {
	t := &lowercaseEmail{fields: DefaultEmailFields}
	if config == nil {
		return t, nil
	}
	var cfg struct {
		Fields []string `json:"fields"`
	}
	if err := decodeStrict(config, &cfg); err != nil {
		return nil, errors.New(`config must be {"fields": ["email", ...]}: ` + err.Error())
	}
	if len(cfg.Fields) == 0 {
		return nil, errors.New("fields: name at least one field")
	}
	for _, f := range cfg.Fields {
		if f == "" {
			return nil, errors.New("fields: empty field name")
		}
	}
	t.fields = cfg.Fields
	return t, nil
}

// Transform lower-cases and trims the configured fields that hold strings.
func (t *lowercaseEmail) Transform(_ context.Context, c Change) (Change, bool, error) {
	for _, f := range t.fields {
		if s, ok := c.Data[f].(string); ok {
			c.Data[f] = strings.ToLower(strings.TrimSpace(s))
		}
	}
	return c, true, nil
}
