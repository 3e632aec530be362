package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

// Error codes of the bound services, besides the agents' protocol codes (protocol.Codes),
// which pass through unchanged.
const (
	CodeValidation         = "validation"
	CodeInUse              = "in_use"
	CodeNotFound           = "not_found"
	CodeConflict           = "conflict"
	CodeFingerprintChanged = "fingerprint_changed"
	CodeKeyringUnavailable = "keyring_unavailable"
	CodeUnreachable        = "unreachable"
	CodeNotPinned          = "not_pinned"
	CodeMissingToken       = "missing_token"
	CodeBadResponse        = "bad_response"
	CodeCanceled           = "canceled"
	CodeInternal           = "internal"
	// CodeBadRequest, CodeNotBound, CodeUnauthorized and CodeForbidden are answered by the
	// web mode server itself (see WebServer).
	CodeBadRequest   = "bad_request"
	CodeNotBound     = "not_bound"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
)

// internalMessage is what an unexpected error says to the frontend; its text goes to the log.
const internalMessage = "internal error; the control center's log has the details"

// Error is the error of every bound method. Its Error() is JSON,
// {"code":"…","message":"…","field":"…"}, which the frontend parses (api/call.ts) from the
// rejected Wails promise and from the web mode's error answers alike. Messages never hold
// a token.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the offending form field (snake_case) of a validation error.
	Field string `json:"field,omitempty"`
}

// Error returns the error as JSON.
func (e *Error) Error() string {
	b, err := json.Marshal(e)
	if err != nil {
		return `{"code":"internal","message":"encode error"}`
	}
	return string(b)
}

// newError builds an *Error.
func newError(code, message string) *Error { return &Error{Code: code, Message: message} }

// fieldError builds a validation *Error for one form field.
func fieldError(field, message string) *Error {
	return &Error{Code: CodeValidation, Message: message, Field: field}
}

// toError maps any error of the backend to an *Error (nil stays nil). Errors the table
// does not know become CodeInternal with a fixed message, and their text is logged.
func toError(log *slog.Logger, op string, err error) *Error {
	if err == nil {
		return nil
	}
	var (
		ae  *Error
		ve  *catalog.ValidationError
		iu  *catalog.InUseError
		pe  *protocol.Error
		fme *fleet.FingerprintMismatchError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ve):
		return fieldError(ve.Field, ve.Message)
	case errors.As(err, &iu):
		return newError(CodeInUse, iu.Error())
	case errors.Is(err, catalog.ErrInUse):
		return newError(CodeInUse, err.Error())
	case errors.As(err, &fme):
		return newError(CodeFingerprintChanged, fme.Error()+"; check the new fingerprint and accept it on the platform")
	case errors.Is(err, catalog.ErrFingerprintChanged), errors.Is(err, fleet.ErrFingerprintChanged):
		return newError(CodeFingerprintChanged, err.Error())
	case errors.Is(err, secrets.ErrUnavailable):
		return newError(CodeKeyringUnavailable, err.Error())
	case errors.As(err, &pe):
		return newError(string(pe.Code), pe.Message)
	case errors.Is(err, catalog.ErrNotFound), errors.Is(err, secrets.ErrNotFound), errors.Is(err, fleet.ErrUnknownPlatform):
		return newError(CodeNotFound, err.Error())
	case errors.Is(err, catalog.ErrConflict):
		return newError(CodeConflict, err.Error())
	case errors.Is(err, fleet.ErrUnreachable):
		return newError(CodeUnreachable, err.Error())
	case errors.Is(err, fleet.ErrNotPinned):
		return newError(CodeNotPinned, "the agent's TLS certificate is not pinned yet: probe the agent and accept its fingerprint")
	case errors.Is(err, fleet.ErrMissingToken):
		return newError(CodeMissingToken, err.Error())
	case errors.Is(err, fleet.ErrBadResponse), errors.Is(err, fleet.ErrNoCertificate):
		return newError(CodeBadResponse, err.Error())
	case errors.Is(err, protocol.ErrShortToken):
		return fieldError("token", err.Error())
	case errors.Is(err, context.Canceled):
		return newError(CodeCanceled, "canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return newError(CodeUnreachable, "no answer in time")
	}
	if log != nil {
		log.Error("unexpected error", "op", op, "err", err)
	}
	return newError(CodeInternal, internalMessage)
}

// httpStatus is the status the web mode answers an error code with. The frontend reads
// the code from the body; the status only helps tools and logs.
func httpStatus(code string) int {
	switch code {
	case CodeValidation, CodeBadRequest:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound, CodeNotBound:
		return http.StatusNotFound
	case CodeConflict, CodeInUse, CodeFingerprintChanged, CodeNotPinned, CodeMissingToken, CodeCanceled:
		return http.StatusConflict
	case CodeKeyringUnavailable:
		return http.StatusServiceUnavailable
	case CodeInternal:
		return http.StatusInternalServerError
	default:
		// The agent's own codes and failures to reach it.
		return http.StatusBadGateway
	}
}
