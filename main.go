//go:build !web

// Command mooxsync is the control center: an admin manages platforms and syncs and pushes
// them to the fleet's agents with one click (Sync Platforms). This build is the desktop
// app (Wails; build tags desktop,production); built with the tag web it is web mode
// instead (main_web.go).
package main

import (
	"log"

	"github.com/wailsapp/wails/v2"
	"github.com/wailsapp/wails/v2/pkg/options"
	"github.com/wailsapp/wails/v2/pkg/options/assetserver"

	"github.com/mooxsync/mooxsync/app"
	"github.com/mooxsync/mooxsync/backend/secrets"
)

func main() {
	a, err := app.New(app.Options{
		Secrets:         secrets.NewKeyring(),
		SecretsBackend:  app.BackendKeyring,
		Emitter:         app.NewWailsEmitter(),
		TrustOnFirstUse: true,
	})
	if err != nil {
		log.Fatalf("mooxsync: %v", err)
	}
	err = wails.Run(&options.App{
		Title:            "mooxsync",
		Width:            1280,
		Height:           800,
		MinWidth:         960,
		MinHeight:        600,
		AssetServer:      &assetserver.Options{Assets: assets},
		OnStartup:        a.Startup,
		OnShutdown:       a.Shutdown,
		Bind:             a.Bindings(),
		BackgroundColour: &options.RGBA{R: 250, G: 250, B: 252, A: 1},
	})
	if err != nil {
		log.Fatalf("mooxsync: %v", err)
	}
}
