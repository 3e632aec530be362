package main

import "embed"

// assets is the built frontend (frontend/dist), served by the desktop window and by web
// mode alike. A fresh clone holds only a placeholder there, so that the module compiles
// before the first frontend build.
//
//go:embed all:frontend/dist
var assets embed.FS
