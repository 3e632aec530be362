//go:build web

package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunWeb_Refuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"--listen", ":8080"}, "not a loopback address"},
		{[]string{"--allowed-host", "shop.example:8080"}, "needs --allow-remote"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runWeb(tc.args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("runWeb(%q) = %d, %q; want %d and %q", tc.args, code, stderr.String(), exitUsage, tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("runWeb(%q) printed %q", tc.args, stdout.String())
		}
	}
}
