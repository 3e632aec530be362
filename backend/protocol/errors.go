package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Code is a machine-readable error code of the protocol's error envelope.
type Code string

// The error codes of PROTOCOL.md section 3.
const (
	CodeUnauthorized    Code = "unauthorized"
	CodeStaleTimestamp  Code = "stale_timestamp"
	CodeReplayed        Code = "replayed"
	CodeNotEnrolled     Code = "not_enrolled"
	CodeAlreadyEnrolled Code = "already_enrolled"
	CodeBadRequest      Code = "bad_request"
	CodeNotFound        Code = "not_found"
	CodeConflict        Code = "conflict"
	CodeLocked          Code = "locked"
	CodeTooLarge        Code = "too_large"
	CodeUnknownModel    Code = "unknown_model"
	CodeUnknownColumn   Code = "unknown_column"
	CodeInternal        Code = "internal"
)

// Codes lists every code, in the order the protocol documents them.
var Codes = []Code{
	CodeUnauthorized, CodeStaleTimestamp, CodeReplayed, CodeNotEnrolled, CodeAlreadyEnrolled,
	CodeBadRequest, CodeNotFound, CodeConflict, CodeLocked, CodeTooLarge, CodeUnknownModel,
	CodeUnknownColumn, CodeInternal,
}

// DefaultStatus is the HTTP status a code is answered with unless the endpoint says otherwise
// (a batch refused by authorisation is 403 unauthorized, for example).
func (c Code) DefaultStatus() int {
	switch c {
	case CodeUnauthorized, CodeStaleTimestamp:
		return http.StatusUnauthorized
	case CodeReplayed, CodeAlreadyEnrolled, CodeConflict, CodeNotEnrolled:
		return http.StatusConflict
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeNotFound:
		return http.StatusNotFound
	case CodeLocked:
		return http.StatusLocked
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnknownModel, CodeUnknownColumn:
		return http.StatusUnprocessableEntity
	default:
		return http.StatusInternalServerError
	}
}

// Error is a protocol error: a code, a message safe to show (never a secret), and the HTTP
// status it travels with.
type Error struct {
	Code    Code
	Message string
	Status  int
}

// Errorf builds an Error with the code's default status.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Status: code.DefaultStatus()}
}

// WithStatus returns a copy of e travelling with another HTTP status.
func (e *Error) WithStatus(status int) *Error {
	c := *e
	c.Status = status
	return &c
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Is reports whether target is an *Error with the same code, so errors.Is(err,
// &Error{Code: CodeReplayed}) matches whatever the message.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// ErrorBody is the JSON error envelope: {"error":{"code":"...","message":"..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of the error envelope.
type ErrorDetail struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// CodeOf returns the protocol code carried by err, or CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// AsError turns any error into an *Error; errors that are not protocol errors become
// internal errors whose message does not leak their text.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Errorf(CodeInternal, "internal error")
}

// WriteError writes err as the protocol's error envelope.
func WriteError(w http.ResponseWriter, err error) {
	e := AsError(err)
	WriteJSON(w, e.Status, ErrorBody{Error: ErrorDetail{Code: e.Code, Message: e.Message}})
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"encode response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// DecodeError reads an error envelope from a response body; when the body is not one it
// returns an Error whose code follows the HTTP status.
func DecodeError(status int, body []byte) *Error {
	var eb ErrorBody
	if err := json.Unmarshal(body, &eb); err == nil && eb.Error.Code != "" {
		return &Error{Code: eb.Error.Code, Message: eb.Error.Message, Status: status}
	}
	code := CodeInternal
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		code = CodeUnauthorized
	case status == http.StatusNotFound:
		code = CodeNotFound
	case status == http.StatusConflict:
		code = CodeConflict
	case status == http.StatusRequestEntityTooLarge:
		code = CodeTooLarge
	case status == http.StatusLocked:
		code = CodeLocked
	case status >= 400 && status < 500:
		code = CodeBadRequest
	}
	msg := http.StatusText(status)
	if len(body) > 0 && len(body) <= 200 {
		msg = string(body)
	}
	return &Error{Code: code, Message: msg, Status: status}
}
