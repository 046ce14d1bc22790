// Package buildinfo holds the version stamped into the binary at build time:
//
//	go build -ldflags "-X github.com/eventrt/eventrt/internal/buildinfo.Version=v1.2.3 \
//	  -X github.com/eventrt/eventrt/internal/buildinfo.Revision=$(git rev-parse --short HEAD)"
//
// These are the only package-level variables in eventrt: the linker can set nothing else.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

var (
	// Version is the release version; "dev" when not stamped.
	Version = "dev"
	// Revision is the VCS revision; read from the module build info when not stamped.
	Revision = ""
)

// Info describes the running binary.
type Info struct {
	Version   string
	Revision  string
	GoVersion string
}

// Get returns the stamped build information, filling the revision from the Go build info
// when the linker did not set it.
func Get() Info {
	rev := Revision
	if rev == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					rev = s.Value[:12]
				}
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	return Info{Version: Version, Revision: rev, GoVersion: runtime.Version()}
}
