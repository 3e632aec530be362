// Package tools pins the Wails CLI (go tool wails) in a module of its own, so that the CLI's
// dependencies stay out of the application's go.mod.
package tools
