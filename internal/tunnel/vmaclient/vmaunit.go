package vmaclient

import (
	"fmt"
	"path/filepath"
	"strings"
)

// unitHidden are the directories the sandbox of vma-tunnel.service hides
// from the tunnel, with the setting that hides them.
var unitHidden = []struct{ dir, by string }{
	{"/tmp", "PrivateTmp=yes gives the unit an empty /tmp of its own"},
	{"/var/tmp", "PrivateTmp=yes gives the unit an empty /var/tmp of its own"},
	{"/home", "ProtectHome=yes makes /home inaccessible to it"},
	{"/root", "ProtectHome=yes makes /root inaccessible to it"},
	{"/run/user", "ProtectHome=yes makes /run/user inaccessible to it"},
}

// UnitProblems says why vma-tunnel.service, as RenderUnit writes it, could
// not run the tunnel of c: the config directory or the vma-enroll binary
// lies where the unit's sandbox cannot see it. Empty when it can.
func UnitProblems(c VMAConfig) []string {
	bin := c.Binary
	if bin == "" {
		bin = defaultUnitBinary
	}
	var out []string
	for _, p := range []struct{ what, path string }{{"the config directory", c.Dir}, {"the vma-enroll binary", bin}} {
		clean := filepath.Clean(p.path)
		for _, h := range unitHidden {
			if clean == h.dir || strings.HasPrefix(clean, h.dir+"/") {
				out = append(out, fmt.Sprintf("%s %s is under %s, and %s", p.what, clean, h.dir, h.by))
				break
			}
		}
	}
	return out
}
