package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/mooxsync/mooxsync/backend/catalog"
	"github.com/mooxsync/mooxsync/backend/fleet"
	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

func TestToError(t *testing.T) {
	const secret = "s3cr3t-token-value-that-must-never-leak-0001"
	for _, tc := range []struct {
		name    string
		err     error
		code    string
		field   string
		message string // a part of the message, when not ""
	}{
		{"validation", fmt.Errorf("create: %w", &catalog.ValidationError{Field: "domain", Message: "domain is required"}),
			CodeValidation, "domain", "domain is required"},
		{"in use names the syncs", &catalog.InUseError{PlatformID: 1, Syncs: []catalog.SyncRef{{ID: 7, Title: "a (posts) to b (posts)"}}},
			CodeInUse, "", "#7 a (posts) to b (posts)"},
		{"in use sentinel", fmt.Errorf("delete platform 1: %w", catalog.ErrInUse), CodeInUse, "", "delete platform 1"},
		{"not found", fmt.Errorf("platform 3: %w", catalog.ErrNotFound), CodeNotFound, "", "platform 3"},
		{"secret not found", fmt.Errorf(`get secret "platform/3": %w`, secrets.ErrNotFound), CodeNotFound, "", ""},
		{"conflict", fmt.Errorf("platform 1 has no pending fingerprint: %w", catalog.ErrConflict), CodeConflict, "", "pending"},
		{"fingerprint changed", fmt.Errorf("platform 1: %w: pinned a, presented b", catalog.ErrFingerprintChanged),
			CodeFingerprintChanged, "", "presented b"},
		{"fingerprint mismatch", &fleet.FingerprintMismatchError{Pinned: "sha256:aa", Seen: "sha256:bb"},
			CodeFingerprintChanged, "", "sha256:bb"},
		{"keyring unavailable", fmt.Errorf(`keyring get secret "sync-token": %w: install gnome-keyring`, secrets.ErrUnavailable),
			CodeKeyringUnavailable, "", "install gnome-keyring"},
		{"keyring timeout", fmt.Errorf("%w after 5s (%w): unlock it", secrets.ErrTimeout, secrets.ErrUnavailable),
			CodeKeyringUnavailable, "", "unlock"},
		{"agent error", fmt.Errorf("rotate: %w", protocol.Errorf(protocol.CodeNotEnrolled, "the agent is not enrolled")),
			"not_enrolled", "", "the agent is not enrolled"},
		{"agent unknown model", protocol.Errorf(protocol.CodeUnknownModel, `unknown model "x"`), "unknown_model", "", "unknown model"},
		{"unreachable", fmt.Errorf("%w: GET /api/models: connection refused", fleet.ErrUnreachable), CodeUnreachable, "", "refused"},
		{"not pinned", fleet.ErrNotPinned, CodeNotPinned, "", "fingerprint"},
		{"missing token", fleet.ErrMissingToken, CodeMissingToken, "", ""},
		{"bad response", fmt.Errorf("%w: GET /api/status: eof", fleet.ErrBadResponse), CodeBadResponse, "", ""},
		{"short token", fmt.Errorf("sync token: %w", protocol.ErrShortToken), CodeValidation, "token", ""},
		{"canceled", fmt.Errorf("sync platforms: %w", context.Canceled), CodeCanceled, "", ""},
		{"app error passes", &Error{Code: "x", Message: "y", Field: "z"}, "x", "z", "y"},
		{"anything else is internal", fmt.Errorf("open catalog: disk I/O error near %s", secret), CodeInternal, "", "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			e := toError(log, "Test.Op", tc.err)
			if e.Code != tc.code || e.Field != tc.field || !strings.Contains(e.Message, tc.message) {
				t.Fatalf("toError = %+v, want code %q field %q message containing %q", e, tc.code, tc.field, tc.message)
			}
			if strings.Contains(e.Error(), secret) {
				t.Fatal("the error carries the secret")
			}
			var decoded map[string]string
			if err := json.Unmarshal([]byte(e.Error()), &decoded); err != nil {
				t.Fatalf("Error() is not JSON: %s", e.Error())
			}
			if _, ok := decoded["field"]; ok != (tc.field != "") {
				t.Errorf("Error() = %s: field present %v, want %v", e.Error(), ok, tc.field != "")
			}
			if tc.code == CodeInternal && !strings.Contains(logs.String(), "Test.Op") {
				t.Error("an internal error is not logged with its operation")
			}
		})
	}
	if toError(nil, "x", nil) != nil || failure(nil, "x", nil) != nil {
		t.Fatal("nil must stay nil")
	}
	if err := failure(nil, "x", errors.New("boom")); err == nil {
		t.Fatal("failure dropped an error")
	}
}

func TestHTTPStatus(t *testing.T) {
	for code, want := range map[string]int{
		CodeValidation: 400, CodeUnauthorized: 401, CodeForbidden: 403, CodeNotFound: 404, CodeNotBound: 404,
		CodeConflict: 409, CodeInUse: 409, CodeKeyringUnavailable: 503, CodeInternal: 500, "not_enrolled": 502,
		CodeUnreachable: 502,
	} {
		if got := httpStatus(code); got != want {
			t.Errorf("httpStatus(%s) = %d, want %d", code, got, want)
		}
	}
}
