// Command mooxsync is the desktop control center: an admin manages platforms and syncs and
// pushes them to the fleet's agents with one click (Sync Platforms).
package main

import (
	"embed"
	"log"

	"github.com/wailsapp/wails/v2"
	"github.com/wailsapp/wails/v2/pkg/options"
	"github.com/wailsapp/wails/v2/pkg/options/assetserver"

	"github.com/mooxsync/mooxsync/app"
)

// assets is the built frontend (frontend/dist). A fresh clone holds only a placeholder
// there, so that the module compiles before the first frontend build.
//
//go:embed all:frontend/dist
var assets embed.FS

func main() {
	a, err := app.New(app.Options{})
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
