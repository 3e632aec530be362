package protocol

import (
	"bytes"
	"fmt"
	json "github.com/goccy/go-json"
	"io"
	"time"
)

// DecodeStrict decodes exactly one JSON value from b into v, refusing unknown fields and
// trailing data. Numbers inside untyped values decode as json.Number, so that large integers
// survive unchanged.
func DecodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeBadRequest, "invalid JSON body: %s", cleanJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Errorf(CodeBadRequest, "invalid JSON body: trailing data after the JSON value")
	}
	return nil
}

func cleanJSONError(err error) string {
	s := err.Error()
	const prefix = "json: "
	if len(s) > len(prefix) && s[:len(prefix)] == prefix {
		s = s[len(prefix):]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// DecodeBatch decodes and validates a data-delivery body.
func DecodeBatch(b []byte) (*Batch, error) {
	var batch Batch
	if err := DecodeStrict(b, &batch); err != nil {
		return nil, err
	}
	if err := batch.Validate(); err != nil {
		return nil, err
	}
	return &batch, nil
}

// Validate checks a batch's shape: ids, event types, keys and the data rule for deletes.
func (b *Batch) Validate() error {
	if !ValidID(b.BatchID) {
		return Errorf(CodeBadRequest, "batch_id must be 1-64 characters of [A-Za-z0-9_-]")
	}
	if b.SourcePlatformID <= 0 || b.SyncID <= 0 {
		return Errorf(CodeBadRequest, "source_platform_id and sync_id must be positive")
	}
	for i := range b.Changes {
		if err := b.Changes[i].validate(); err != nil {
			return Errorf(CodeBadRequest, "change %d: %s", i, err)
		}
	}
	return nil
}

func (c *Change) validate() error {
	switch c.EventType {
	case EventCreated, EventUpdated:
		if c.Data == nil {
			return fmt.Errorf("event_type %s needs data", c.EventType)
		}
	case EventDeleted:
		if c.Data != nil {
			return fmt.Errorf("data must be absent for deleted")
		}
	default:
		return fmt.Errorf("event_type must be created, updated or deleted")
	}
	if c.Model == "" {
		return fmt.Errorf("model is empty")
	}
	if c.Key.Field == "" || c.Key.Value == nil {
		return fmt.Errorf("key needs a field and a value")
	}
	switch c.Key.Value.(type) {
	case string, json.Number:
	default:
		return fmt.Errorf("key value must be a string or a number")
	}
	if c.ChangedAt != "" {
		if _, err := time.Parse(time.RFC3339Nano, c.ChangedAt); err != nil {
			return fmt.Errorf("changed_at is not RFC 3339")
		}
	}
	return nil
}
